import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { PipelineError } from '../../core/errors.js'
import type { Provider, ToolConfig } from '../../core/tool.js'

/** What a provider adapter sees of one request: the headers (lowercase names) and the body exactly as received. */
export interface ProviderRequest {
  readonly headers: IncomingHttpHeaders
  readonly rawBody: Buffer
}

/**
 * Outcome of a signature check. `verified: false` only for a generic tool with `signature: "none"`, which
 * accepts unsigned requests on purpose. A failure carries no detail: callers answer 401 without saying which
 * part was wrong.
 */
export type VerifyResult = { readonly ok: true; readonly verified: boolean } | { readonly ok: false }

/** The provider-specific facts ingest needs to build a StreamEvent. */
export interface NormalizedDelivery {
  /** The provider's delivery id (`X-GitHub-Delivery`, `webhook-id`, …), when it sent one. */
  readonly deliveryId?: string
  /** Event name without the `webhook.<provider>.` prefix, e.g. `push`, `push_hook`, `repo:push`. */
  readonly event: string
  readonly payload: unknown
  /** `owner/name` where the provider has one, otherwise `""`. */
  readonly repository: string
}

/**
 * One webhook sender's scheme: how its signature is checked on the raw bytes, which content types it sends,
 * and where its event name, delivery id and repository are. Every provider in `PROVIDERS` has one.
 *
 * @example
 * const adapter = PROVIDER_ADAPTERS[tool.provider]
 * if (!adapter.verify({ headers, rawBody }, tool).ok) return reply(401)
 * const { event, repository, deliveryId } = adapter.normalize({ headers, rawBody }, JSON.parse(rawBody.toString()))
 */
export interface ProviderAdapter {
  readonly provider: Provider
  /** Media types (lowercase, no parameters) the provider sends; others are answered 415. */
  readonly contentTypes: readonly string[]
  /** Request headers (lowercase) that carry a secret for this tool; ingest drops them from `metadata.headers`. */
  secretHeaders(tool: ToolConfig): readonly string[]
  /** Checks the signature over `rawBody`, before anything parses it. Never throws. */
  verify(request: ProviderRequest, tool: ToolConfig): VerifyResult
  /** Reads event name, delivery id and repository. Throws a permanent PipelineError (`MISSING_HEADER`, …) for a bad request. */
  normalize(request: ProviderRequest, payload: unknown, tool: ToolConfig): NormalizedDelivery
}

/**
 * The first value of header `name` (lowercase), or `undefined` when it is absent or empty.
 *
 * @example
 * header(req.headers, 'x-github-event') // "push"
 */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  const first = Array.isArray(value) ? value[0] : value
  return first === undefined || first === '' ? undefined : first
}

/**
 * Like `header`, but a missing header is a bad request (permanent `MISSING_HEADER`, answered 400).
 *
 * @example
 * const event = requireHeader(req.headers, 'x-github-event', 'GitHub')
 */
export function requireHeader(headers: IncomingHttpHeaders, name: string, sender: string): string {
  const value = header(headers, name)
  if (value === undefined) {
    throw new PipelineError('permanent', 'MISSING_HEADER',
      `header "${name}" is required on ${sender} webhook requests; check the sender's webhook settings`)
  }
  return value
}

/**
 * HMAC-SHA256 of `data` under `key`.
 *
 * @example
 * hmacSha256('s3cret', rawBody).toString('hex')
 */
export function hmacSha256(key: string | Buffer, data: Buffer | string): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

/**
 * Compares two strings in time independent of where they differ and of their lengths: both are hashed to
 * 32 bytes first, then compared with `timingSafeEqual`.
 *
 * @example
 * safeEqual(req.headers['x-gitlab-token'] ?? '', tool.secret)
 */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const da = createHash('sha256').update(a).digest()
  const db = createHash('sha256').update(b).digest()
  return timingSafeEqual(da, db)
}

const PREFIXED_HEX = /^sha256=([0-9a-f]{64})$/i

/**
 * Checks a `sha256=<hex>` header (GitHub's `X-Hub-Signature-256`, Bitbucket's and Jira's `X-Hub-Signature`)
 * against the HMAC-SHA256 of the raw body.
 *
 * @example
 * verifyPrefixedHex(header(req.headers, 'x-hub-signature-256'), tool.secret, rawBody)
 */
export function verifyPrefixedHex(value: string | undefined, secret: string, rawBody: Buffer): VerifyResult {
  if (value === undefined || secret === '') return { ok: false }
  // the shape is public (a prefix and 64 hex digits, either case); only the digest's 32 bytes are compared in
  // constant time, with no hex text or extra hashing per request
  const hex = PREFIXED_HEX.exec(value.trim())?.[1]
  if (hex === undefined) return { ok: false }
  return timingSafeEqual(Buffer.from(hex, 'hex'), hmacSha256(secret, rawBody)) ? { ok: true, verified: true } : { ok: false }
}

/** `value` when it is a non-empty string, else `undefined`. */
export function stringField(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

/**
 * The value at a JSON pointer (RFC 6901: `/a/0/b`, `~1` for `/`, `~0` for `~`) in `payload`, or `undefined`.
 *
 * @example
 * pointer({ data: { id: 7 } }, '/data/id') // 7
 */
export function pointer(payload: unknown, at: string): unknown {
  let value = payload
  for (const raw of at.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined
    value = (value as Record<string, unknown>)[key]
  }
  return value
}

/** `payload[a][b]…` when every step is an object, else `undefined`. */
export function path(payload: unknown, ...keys: string[]): unknown {
  let at = payload
  for (const key of keys) {
    if (typeof at !== 'object' || at === null || Array.isArray(at)) return undefined
    at = (at as Record<string, unknown>)[key]
  }
  return at
}
