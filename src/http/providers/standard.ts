import { timingSafeEqual } from 'node:crypto'
import type { ProviderAdapter, VerifyResult } from './provider.js'
import { header, hmacSha256, path, stringField } from './provider.js'

/** How far `webhook-timestamp` may be from now, in seconds, before a request is refused as a replay. */
export const STANDARD_TOLERANCE_SECONDS = 300

const V1_SIGNATURE = /^v1,([A-Za-z0-9+/]{43}=)$/

/**
 * The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`, or the secret's UTF-8 bytes when it
 * has no such prefix.
 *
 * @example
 * standardSigningKey('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') // 24-byte Buffer
 */
export function standardSigningKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8')
}

function verifyStandard(headers: Parameters<ProviderAdapter['verify']>[0]['headers'], rawBody: Buffer, secret: string, nowMs: number): VerifyResult {
  const id = header(headers, 'webhook-id')
  const timestamp = header(headers, 'webhook-timestamp')
  const signatures = header(headers, 'webhook-signature')
  if (id === undefined || timestamp === undefined || signatures === undefined || secret === '') return { ok: false }
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowMs / 1000 - Number(timestamp)) > STANDARD_TOLERANCE_SECONDS) {
    return { ok: false }
  }
  const key = standardSigningKey(secret)
  if (key.length === 0) return { ok: false }
  const expected = hmacSha256(key, Buffer.concat([Buffer.from(`${id}.${timestamp}.`), rawBody]))
  let ok = false
  // check every listed signature (no early exit), so timing does not tell which one matched. The shape is public
  // (`v1,` and 44 base64 characters); only a candidate of that shape costs a 32-byte compare, so an unsigned
  // request listing thousands of entries costs no hashing per entry
  for (const candidate of signatures.split(' ')) {
    const base64 = V1_SIGNATURE.exec(candidate)?.[1]
    if (base64 !== undefined && timingSafeEqual(Buffer.from(base64, 'base64'), expected)) ok = true
  }
  return ok ? { ok: true, verified: true } : { ok: false }
}

/**
 * Standard Webhooks (standardwebhooks.com): `webhook-signature` is a space-separated list of `v1,<base64>`,
 * each an HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<raw body>`; the request is valid when any one
 * matches and `webhook-timestamp` is within ±5 minutes of now. The event is the payload's `type` field
 * (`"event"` when absent); the delivery id is `webhook-id`; `repository` is `""`.
 *
 * @example
 * standard.verify({ headers, rawBody }, tool) // { ok: false } for a replay older than 5 minutes
 */
export const standard: ProviderAdapter = Object.freeze<ProviderAdapter>({
  provider: 'standard',
  contentTypes: ['application/json'],
  secretHeaders: () => ['webhook-signature'],
  verify: (request, tool) => verifyStandard(request.headers, request.rawBody, tool.secret, Date.now()),
  normalize(request, payload) {
    const deliveryId = header(request.headers, 'webhook-id')
    return {
      event: stringField(path(payload, 'type')) ?? 'event',
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      payload,
      repository: '',
    }
  },
})
