import type { GenericSignature } from '../../core/tool.js'
import type { ProviderAdapter, VerifyResult } from './provider.js'
import { header, hmacSha256, path, pointer, safeEqual, stringField } from './provider.js'

function verifyGeneric(value: string | undefined, sig: GenericSignature, secret: string, rawBody: Buffer): VerifyResult {
  if (value === undefined || secret === '') return { ok: false }
  const digest = hmacSha256(secret, rawBody)
  const expected = sig.encoding === 'hex' ? digest.toString('hex') : digest.toString('base64')
  const trimmed = value.trim()
  if (!trimmed.startsWith(sig.prefix)) return { ok: false }
  const given = trimmed.slice(sig.prefix.length)
  // hex is case-insensitive; base64 is not
  return safeEqual(sig.encoding === 'hex' ? given.toLowerCase() : given, expected) ? { ok: true, verified: true } : { ok: false }
}

// a JSON number past 2^53 (a 64-bit id such as a snowflake) loses digits in JSON.parse, so two ids could become
// one and the second event be answered as a duplicate: such an id is its text as sent (JSON.parse's source text)
function exactDeliveryId(found: number, rawBody: Buffer, at: string): string {
  if (Math.abs(found) <= Number.MAX_SAFE_INTEGER) return String(found)
  const source = (_key: string, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && context?.source !== undefined ? context.source : value
  const exact = pointer(JSON.parse(rawBody.toString('utf8'), source), at)
  return typeof exact === 'string' ? exact : String(found)
}

/**
 * Any sender that signs the raw body with HMAC-SHA256: the signature sits in the tool's `signature.header`
 * (default `x-signature`), encoded `hex` (default) or `base64`, after an optional `signature.prefix` (e.g.
 * `"sha256="`). With `signature: "none"` the tool accepts unsigned requests and events carry
 * `auth_context.verified: false`. The event is the `X-Event-Type` header, else the payload's `type` or `event`
 * field, else `"event"`. The delivery id is where the tool's `delivery_id` says (`{ header }`, or `{ pointer }` into
 * the payload, a string or a number, one past 2^53 taken digit for digit); without it a UUID is generated, so re-sends are not recognised. `repository` is `""`.
 *
 * @example
 * parseTool({ id: 'shop', provider: 'generic', secret: 's', signature: { header: 'x-shop-signature', encoding: 'base64' } })
 */
export const generic: ProviderAdapter = Object.freeze<ProviderAdapter>({
  provider: 'generic',
  contentTypes: ['application/json'],
  secretHeaders: (tool) => (typeof tool.signature === 'object' ? [tool.signature.header] : []),
  verify(request, tool) {
    if (tool.signature === 'none') return { ok: true, verified: false }
    const sig = tool.signature ?? { header: 'x-signature', encoding: 'hex' as const, prefix: '' }
    return verifyGeneric(header(request.headers, sig.header), sig, tool.secret, request.rawBody)
  },
  normalize(request, payload, tool) {
    const source = tool.deliveryId
    const found = source === undefined ? undefined
      : 'header' in source ? header(request.headers, source.header) : pointer(payload, source.pointer)
    const deliveryId = typeof found === 'number' && source !== undefined && 'pointer' in source
      ? exactDeliveryId(found, request.rawBody, source.pointer) : typeof found === 'string' ? found : undefined
    return {
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      event: header(request.headers, 'x-event-type') ?? stringField(path(payload, 'type')) ??
        stringField(path(payload, 'event')) ?? 'event',
      payload,
      repository: '',
    }
  },
})
