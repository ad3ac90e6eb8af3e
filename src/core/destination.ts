import jsonata from 'jsonata'
import { formatDuration } from './duration.js'
import { PipelineError } from './errors.js'
import { holdsUrlMask, maskUrl, URL_MASK_HELD } from './mask-url.js'
import { parseDuration, parseRetryPolicy, retryPolicyToJSON, type RetryPolicy } from './retry-policy.js'
import { parseHeaderMap, parseSecretExpiry, SECRET_MASK } from './tool-secrets.js'

/** The id of the destination a tool's `forward_url` (processing_mode `store_and_forward`) stands for. */
export const DEFAULT_DESTINATION_ID = 'default'
/** What a destination id looks like: 1–64 lowercase letters, digits, "_" or "-", starting with a letter or digit. */
export const DESTINATION_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/
/** Destinations one tool may have (explicit ones; the `forward_url` shorthand is not counted). */
export const MAX_DESTINATIONS = 20
const MAX_URL_CHARS = 2048
const MAX_EVENT_TYPES = 50
const MAX_FILTER_CHARS = 4096
const MAX_TRANSFORM_CHARS = 16_384
const MAX_SECRET_CHARS = 1024
const MIN_TIMEOUT_MS = 100
const MAX_TIMEOUT_MS = 60_000
const MIN_AUTO_DISABLE_MS = 1000
const MAX_AUTO_DISABLE_MS = 365 * 86_400_000
const MAX_PER_SECOND = 10_000
const MAX_BURST = 10_000
const MAX_CONCURRENCY = 1000
const EVENT_TYPE_PATTERN = /^[A-Za-z0-9._:/*-]{1,128}$/

/** A destination's rate limit: a token bucket of `burst` tokens refilled at `perSecond` per second. */
export interface DestinationRateLimit {
  readonly perSecond: number
  readonly burst: number
}

/**
 * One place a tool's events are delivered to, with its own rules: which events (types and a JSONata filter),
 * what is sent (a JSONata transform, else the event), how (headers, timeout, retries, rate, concurrency), and
 * the secret it is signed with. Every secret and header value is write-only.
 */
export interface Destination {
  /** Unique within the tool; a slug (`DESTINATION_ID_PATTERN`). */
  readonly id: string
  /** Where events are POSTed (http or https). */
  readonly url: string
  /** A disabled destination is skipped at fan-out (its state shows `disabled`). @defaultValue true */
  readonly enabled: boolean
  /** Event types delivered: exact names or globs with `*` (any characters). Empty: every type. @defaultValue [] */
  readonly eventTypes: readonly string[]
  /** JSONata over the event's payload; the event is delivered only when it yields `true`. */
  readonly filter?: string
  /** JSONata over the event's payload; its JSON result is the body sent instead of the event. */
  readonly transform?: string
  /** Extra request headers (e.g. the receiver's own `authorization`); names lowercase. */
  readonly headers?: Readonly<Record<string, string>>
  /** Time for one request in ms (100 ms – 60 s). @defaultValue unset: FORWARD_TIMEOUT */
  readonly timeoutMs?: number
  /** Retry schedule of each delivery to it. @defaultValue unset: the tool's retry_policy */
  readonly retryPolicy?: RetryPolicy
  /** Requests per second to it across all workers. @defaultValue unset: no limit */
  readonly rateLimit?: DestinationRateLimit
  /** Requests in flight to it at once across a worker. @defaultValue unset: the sink's per-origin bulkhead */
  readonly maxConcurrency?: number
  /**
   * A destination that has failed every delivery for this long (ms, 1 s – 365 d) is disabled, with an audit row
   * and a metric, and its pending deliveries are dead-lettered (`DESTINATION_DISABLED`). @defaultValue unset: never
   */
  readonly autoDisableAfterMs?: number
  /** Signing secret (Standard Webhooks `whsec_…`). Absent: the tool's forward secret (or inbound secret) signs. */
  readonly secret?: string
  /** The previous signing secret; requests carry a signature with it too until it expires or is retired. */
  readonly previousSecret?: string
  /** When (epoch ms) `previousSecret` stops being used; absent: until it is retired. */
  readonly previousSecretExpiresAt?: number
}

/** A destination in its user-facing shape (snake_case, durations as strings), as YAML, the API and the CLI take it. */
export interface DestinationInput {
  id?: unknown
  url?: unknown
  enabled?: unknown
  event_types?: unknown
  filter?: unknown
  transform?: unknown
  headers?: unknown
  timeout?: unknown
  retry_policy?: unknown
  rate_limit?: unknown
  max_concurrency?: unknown
  auto_disable_after?: unknown
  secret?: unknown
  previous_secret?: unknown
  previous_secret_expires_at?: unknown
}

const FIELDS = new Set<string>(['id', 'url', 'enabled', 'event_types', 'filter', 'transform', 'headers', 'timeout', 'retry_policy',
  'rate_limit', 'max_concurrency', 'auto_disable_after', 'secret', 'previous_secret', 'previous_secret_expires_at'])

function bad(where: string, field: string, problem: string): never {
  throw new PipelineError('permanent', 'DESTINATION_INVALID', `${where}: field "${field}" ${problem}`)
}

function expression(where: string, field: string, value: unknown, maxChars: number): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string' || value.length > maxChars) bad(where, field, `must be a JSONata expression of at most ${maxChars} characters`)
  try {
    jsonata(value)
  } catch (err) {
    bad(where, field, `does not compile as JSONata: ${(err as Error).message}`)
  }
  return value
}

function secretField(where: string, field: string, value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string' || value.length > MAX_SECRET_CHARS) bad(where, field, `must be a string of at most ${MAX_SECRET_CHARS} characters`)
  if (value === SECRET_MASK) bad(where, field, `holds the mask "${SECRET_MASK}"; send the real secret, or leave the field out to keep the stored one`)
  if (value.startsWith('whsec_') && Buffer.from(value.slice(6), 'base64').length < 16) {
    bad(where, field, 'must hold at least 16 bytes of base64 after "whsec_"; leave it out to have one generated')
  }
  return value
}

function eventTypes(where: string, value: unknown): string[] {
  if (value === undefined || value === null) return []
  if (!Array.isArray(value) || value.length > MAX_EVENT_TYPES) bad(where, 'event_types', `must be a list of at most ${MAX_EVENT_TYPES} event types or globs`)
  return value.map((t, i) => {
    if (typeof t !== 'string' || !EVENT_TYPE_PATTERN.test(t)) {
      bad(where, `event_types[${i}]`, `must be an event type or a glob with "*" (1–128 of letters, digits, "._:/-*"); got ${JSON.stringify(String(t).slice(0, 130))}`)
    }
    return t
  })
}

function rateLimit(where: string, value: unknown): DestinationRateLimit | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) bad(where, 'rate_limit', 'must be an object { per_second, burst }')
  const r = value as Record<string, unknown>
  const unknown = Object.keys(r).filter((k) => k !== 'per_second' && k !== 'burst')
  if (unknown.length > 0) bad(where, 'rate_limit', `has unknown field(s) ${unknown.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}; expected per_second, burst`)
  const perSecond = r.per_second
  if (typeof perSecond !== 'number' || !(perSecond > 0) || perSecond > MAX_PER_SECOND) {
    bad(where, 'rate_limit.per_second', `must be a number above 0 and at most ${MAX_PER_SECOND}; got ${JSON.stringify(perSecond)}`)
  }
  const burst = r.burst ?? Math.max(1, Math.ceil(perSecond))
  if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1 || burst > MAX_BURST) {
    bad(where, 'rate_limit.burst', `must be an integer from 1 to ${MAX_BURST}; got ${JSON.stringify(burst)}`)
  }
  return { perSecond, burst }
}

/**
 * Validates one destination in its user-facing shape and returns the typed Destination. Throws a permanent
 * PipelineError `DESTINATION_INVALID` naming the field (filters and transforms are compiled, so a bad expression
 * is refused with the compiler's message); secret and header values never appear in a message.
 *
 * @example
 * parseDestination({ id: 'billing', url: 'https://billing.example.test/hooks', event_types: ['webhook.github.pull_request*'],
 *   filter: 'action = "opened"' }, 'tool "gh-main"')
 */
export function parseDestination(input: DestinationInput, where = 'destination'): Destination {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) bad(where, 'destinations[]', 'must be an object { id, url, … }')
  const { id } = input
  if (typeof id !== 'string' || !DESTINATION_ID_PATTERN.test(id)) {
    bad(where, 'id', `must be 1–64 characters of lowercase letters, digits, "_" or "-"; got ${JSON.stringify(typeof id === 'string' ? id.slice(0, 70) : id)}`)
  }
  const at = `${where} destination "${id}"`
  const unknown = Object.keys(input).filter((k) => !FIELDS.has(k))
  if (unknown.length > 0) bad(at, unknown[0] as string, `is not a destination field; expected ${[...FIELDS].join(', ')}`)
  const url = input.url
  if (typeof url !== 'string' || url.length > MAX_URL_CHARS || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    bad(at, 'url', `must be an http(s) URL of at most ${MAX_URL_CHARS} characters; got ${typeof url === 'string' ? JSON.stringify(maskUrl(url.slice(0, MAX_URL_CHARS))) : typeof url}`)
  }
  if (holdsUrlMask(url)) bad(at, 'url', URL_MASK_HELD)
  const enabled = input.enabled ?? true
  if (typeof enabled !== 'boolean') bad(at, 'enabled', `must be true or false; got ${JSON.stringify(enabled)}`)
  const filter = expression(at, 'filter', input.filter, MAX_FILTER_CHARS)
  const transform = expression(at, 'transform', input.transform, MAX_TRANSFORM_CHARS)
  const headers = reuse(() => parseHeaderMap(at, 'headers', input.headers, 'DESTINATION_INVALID'))
  let timeoutMs: number | undefined
  if (input.timeout !== undefined && input.timeout !== null) {
    timeoutMs = parseDuration(at, 'timeout', input.timeout, 0, 'DESTINATION_INVALID')
    if (timeoutMs < MIN_TIMEOUT_MS || timeoutMs > MAX_TIMEOUT_MS) {
      bad(at, 'timeout', `must be between ${formatDuration(MIN_TIMEOUT_MS)} and ${formatDuration(MAX_TIMEOUT_MS)}; got ${JSON.stringify(input.timeout)}`)
    }
  }
  const retryPolicy = input.retry_policy === undefined || input.retry_policy === null
    ? undefined : parseRetryPolicy(at, input.retry_policy, 'DESTINATION_INVALID')
  let autoDisableAfterMs: number | undefined
  if (input.auto_disable_after !== undefined && input.auto_disable_after !== null && input.auto_disable_after !== 'off') {
    autoDisableAfterMs = parseDuration(at, 'auto_disable_after', input.auto_disable_after, 0, 'DESTINATION_INVALID')
    if (autoDisableAfterMs < MIN_AUTO_DISABLE_MS || autoDisableAfterMs > MAX_AUTO_DISABLE_MS) {
      bad(at, 'auto_disable_after', `must be between ${formatDuration(MIN_AUTO_DISABLE_MS)} and ${formatDuration(MAX_AUTO_DISABLE_MS)}, or "off"; got ${JSON.stringify(input.auto_disable_after)}`)
    }
  }
  const maxConcurrency = input.max_concurrency ?? undefined
  if (maxConcurrency !== undefined && (typeof maxConcurrency !== 'number' || !Number.isInteger(maxConcurrency) || maxConcurrency < 1 || maxConcurrency > MAX_CONCURRENCY)) {
    bad(at, 'max_concurrency', `must be an integer from 1 to ${MAX_CONCURRENCY}; got ${JSON.stringify(maxConcurrency)}`)
  }
  const secret = secretField(at, 'secret', input.secret)
  const previousSecret = secretField(at, 'previous_secret', input.previous_secret)
  const previousSecretExpiresAt = parseSecretExpiry(at, 'previous_secret_expires_at', input.previous_secret_expires_at, 'DESTINATION_INVALID')
  const limit = rateLimit(at, input.rate_limit)
  return Object.freeze({
    id, url, enabled, eventTypes: Object.freeze(eventTypes(at, input.event_types)),
    ...(filter !== undefined ? { filter } : {}),
    ...(transform !== undefined ? { transform } : {}),
    ...(headers && Object.keys(headers).length > 0 ? { headers } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(retryPolicy ? { retryPolicy } : {}),
    ...(limit ? { rateLimit: Object.freeze(limit) } : {}),
    ...(maxConcurrency !== undefined ? { maxConcurrency: maxConcurrency as number } : {}),
    ...(autoDisableAfterMs !== undefined ? { autoDisableAfterMs } : {}),
    ...(secret ? { secret } : {}),
    ...(previousSecret ? { previousSecret } : {}),
    ...(previousSecret && previousSecretExpiresAt !== undefined ? { previousSecretExpiresAt } : {}),
  })
}

// a parser shared with tools answers TOOL_INVALID; here the same message is a destination's
function reuse<T>(parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    if (err instanceof PipelineError && err.code === 'TOOL_INVALID') throw new PipelineError('permanent', 'DESTINATION_INVALID', err.message)
    throw err
  }
}

/**
 * Validates a tool's `destinations` list: at most 20, ids unique, and none named `default` (that id is the
 * `forward_url` shorthand's). Throws `DESTINATION_INVALID` naming the entry.
 *
 * @example
 * parseDestinations('tool "gh-main"', [{ id: 'ci', url: 'https://ci.example.test/hook' }])
 */
export function parseDestinations(where: string, value: unknown): readonly Destination[] {
  if (value === undefined || value === null) return []
  if (!Array.isArray(value) || value.length > MAX_DESTINATIONS) bad(where, 'destinations', `must be a list of at most ${MAX_DESTINATIONS} destinations`)
  const seen = new Set<string>()
  return Object.freeze(value.map((input, i) => {
    const destination = parseDestination(input as DestinationInput, `${where} destinations[${i}]:`)
    if (destination.id === DEFAULT_DESTINATION_ID) {
      bad(where, `destinations[${i}].id`, `must not be "${DEFAULT_DESTINATION_ID}": that id is the forward_url shorthand's; pick another id`)
    }
    if (seen.has(destination.id)) bad(where, `destinations[${i}].id`, `repeats "${destination.id}"; destination ids must be unique within a tool`)
    seen.add(destination.id)
    return destination
  }))
}

/**
 * The destination as API responses, CLI output and audit rows show it: URL credentials and query values masked,
 * secrets and header values replaced by `********`.
 *
 * @example
 * destinationToJSON(d) // { id: 'ci', url: 'https://ci.example.test/hook', enabled: true, event_types: [], secret: '********', … }
 */
export function destinationToJSON(d: Destination): Record<string, unknown> {
  return {
    id: d.id, url: maskUrl(d.url), enabled: d.enabled, event_types: [...d.eventTypes],
    filter: d.filter ?? null, transform: d.transform ?? null,
    headers: d.headers ? Object.fromEntries(Object.keys(d.headers).map((k) => [k, SECRET_MASK])) : {},
    timeout: d.timeoutMs === undefined ? null : formatDuration(d.timeoutMs),
    retry_policy: d.retryPolicy ? retryPolicyToJSON(d.retryPolicy) : null,
    rate_limit: d.rateLimit ? { per_second: d.rateLimit.perSecond, burst: d.rateLimit.burst } : null,
    max_concurrency: d.maxConcurrency ?? null,
    auto_disable_after: d.autoDisableAfterMs === undefined ? null : formatDuration(d.autoDisableAfterMs),
    secret: d.secret ? SECRET_MASK : null,
    ...(d.previousSecret ? {
      previous_secret: SECRET_MASK,
      previous_secret_expires_at: d.previousSecretExpiresAt === undefined ? null : new Date(d.previousSecretExpiresAt).toISOString(),
    } : {}),
  }
}

/**
 * The destination in its input shape with every value, secrets and headers included, for storing it and for a
 * read-modify-write (e.g. PATCH). Never send this to a user: `destinationToJSON` is the shown form.
 *
 * @example
 * parseDestination({ ...destinationToInput(d), enabled: false })
 */
export function destinationToInput(d: Destination): DestinationInput {
  return {
    id: d.id, url: d.url, enabled: d.enabled, event_types: [...d.eventTypes],
    ...(d.filter !== undefined ? { filter: d.filter } : {}),
    ...(d.transform !== undefined ? { transform: d.transform } : {}),
    ...(d.headers ? { headers: { ...d.headers } } : {}),
    ...(d.timeoutMs !== undefined ? { timeout: `${d.timeoutMs}ms` } : {}),
    ...(d.retryPolicy ? { retry_policy: retryPolicyToJSON(d.retryPolicy) } : {}),
    ...(d.rateLimit ? { rate_limit: { per_second: d.rateLimit.perSecond, burst: d.rateLimit.burst } } : {}),
    ...(d.maxConcurrency !== undefined ? { max_concurrency: d.maxConcurrency } : {}),
    ...(d.autoDisableAfterMs !== undefined ? { auto_disable_after: `${d.autoDisableAfterMs}ms` } : {}),
    ...(d.secret ? { secret: d.secret } : {}),
    ...(d.previousSecret ? { previous_secret: d.previousSecret } : {}),
    ...(d.previousSecretExpiresAt !== undefined ? { previous_secret_expires_at: new Date(d.previousSecretExpiresAt).toISOString() } : {}),
  }
}

// a "*" glob matched part by part, each literal at its first place after the one before: linear in the type's
// length. A RegExp of ".*" parts backtracks exponentially on a near miss ("*a*a…*b" took seconds per event on
// the worker's main thread), and both sides are user input: the pattern an admin's, the type a sender's
function matchesGlob(pattern: string, eventType: string): boolean {
  const parts = pattern.split('*')
  const first = parts[0] as string
  const last = parts[parts.length - 1] as string
  if (eventType.length < first.length + last.length || !eventType.startsWith(first) || !eventType.endsWith(last)) return false
  const end = eventType.length - last.length
  let at = first.length
  for (const part of parts.slice(1, -1)) {
    const found = eventType.indexOf(part, at)
    if (found === -1 || found + part.length > end) return false
    at = found + part.length
  }
  return true
}

/**
 * Whether a destination takes events of this type: its `event_types` is empty, or one entry equals the type or
 * matches it as a glob (`*` = any characters, dots included).
 *
 * @example
 * acceptsEventType({ eventTypes: ['webhook.github.pull_request*'] }, 'webhook.github.pull_request_review') // true
 */
export function acceptsEventType(d: Pick<Destination, 'eventTypes'>, eventType: string): boolean {
  if (d.eventTypes.length === 0) return true
  return d.eventTypes.some((p) => (p.includes('*') ? matchesGlob(p, eventType) : p === eventType))
}
