import { randomBytes } from 'node:crypto'
import { PipelineError } from './errors.js'

/** What write-only values show as in API responses, CLI output and audit rows. */
export const SECRET_MASK = '********'
const MAX_SECRET_CHARS = 1024
const MAX_FORWARD_HEADERS = 20
const MAX_HEADER_VALUE_CHARS = 4096
// headers hookstream sets itself, or that would break the request
const RESERVED_FORWARD_HEADERS = /^(host|content-length|content-type|transfer-encoding|connection|keep-alive|upgrade|te|trailer|expect|user-agent|traceparent|webhook-.*)$/

/**
 * A tool's rotatable secrets (all write-only: never returned by the admin API, never logged).
 * Inbound: `secret` (on ToolConfig) plus an optional previous one accepted during a sender's rotation.
 * Outbound: the secret forwards are signed with, plus an optional previous one signed with too, and
 * headers (credentials) sent with every forward.
 */
export interface ToolSecrets {
  /** The previous inbound signing secret, accepted next to `secret` until it expires or is retired. */
  readonly previousSecret?: string
  /** When (epoch ms) `previousSecret` stops being accepted; absent: until it is retired. */
  readonly previousSecretExpiresAt?: number
  /** The secret forwards are signed with (Standard Webhooks `whsec_…`). Absent: the inbound `secret` (rows stored by older versions; a config file must set it). */
  readonly forwardSecret?: string
  /** The previous forward signing secret; forwards carry a signature with it too until it expires or is retired. */
  readonly previousForwardSecret?: string
  /** When (epoch ms) `previousForwardSecret` stops being used; absent: until it is retired. */
  readonly previousForwardSecretExpiresAt?: number
  /** Headers sent with every forward (e.g. `authorization` for the destination); names lowercase. */
  readonly forwardHeaders?: Readonly<Record<string, string>>
}

/** The rotatable secrets in their user-facing (snake_case) shape. */
export interface ToolSecretsInput {
  previous_secret?: unknown
  previous_secret_expires_at?: unknown
  forward_secret?: unknown
  previous_forward_secret?: unknown
  previous_forward_secret_expires_at?: unknown
  forward_headers?: unknown
}

function bad(where: string, field: string, problem: string): never {
  throw new PipelineError('permanent', 'TOOL_INVALID', `${where}: field "${field}" ${problem}`)
}

function optionalSecret(where: string, field: string, value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string' || value.length > MAX_SECRET_CHARS) bad(where, field, `must be a string of at most ${MAX_SECRET_CHARS} characters`)
  if (value === SECRET_MASK) bad(where, field, `holds the mask "${SECRET_MASK}"; send the real secret, or leave the field out to keep the stored one`)
  return value
}

/**
 * A rotation's end (`previous_secret_expires_at` and the like): an ISO 8601 time, or a number of milliseconds
 * since 1970; undefined when not given. Throws a permanent PipelineError with `code` naming `field`, also for a
 * number before 1973, which is seconds given by mistake: taken as milliseconds it would end the rotation at once
 * and refuse every sender still signing with the previous secret.
 *
 * @example
 * parseSecretExpiry('tool "gh"', 'previous_secret_expires_at', '2026-12-01T00:00:00Z') // 1796083200000
 */
export function parseSecretExpiry(where: string, field: string, value: unknown, code = 'TOOL_INVALID'): number | undefined {
  const fail = (problem: string): never => { throw new PipelineError('permanent', code, `${where}: field "${field}" ${problem}`) }
  if (value === undefined || value === null || value === '') return undefined
  const ms = typeof value === 'number' ? value : typeof value === 'string' ? Date.parse(value) : Number.NaN
  // a finite number past ±8.64e15 ms is no Date, and showing the tool (toISOString) would throw
  if (!Number.isFinite(ms) || Number.isNaN(new Date(ms).getTime())) fail(`must be an ISO 8601 time such as "2026-12-01T00:00:00Z"; got ${JSON.stringify(String(value).slice(0, 40))}`)
  if (typeof value === 'number' && ms < 1e11) {
    fail(`is milliseconds since 1970 when a number; got ${value}, which looks like seconds (multiply by 1000, or give an ISO 8601 time such as "2026-12-01T00:00:00Z")`)
  }
  return ms
}

/**
 * Validates a map of extra request headers (write-only values, e.g. a receiver's own `authorization`): at most
 * 20, names lowercase HTTP tokens other than the ones hookstream sets, values up to 4,096 characters without
 * line breaks. Throws a permanent PipelineError with `code` naming `field`; values never appear in a message.
 *
 * @example
 * parseHeaderMap('tool "gh"', 'forward_headers', { Authorization: 'Bearer x' }) // { authorization: 'Bearer x' }
 */
export function parseHeaderMap(where: string, field: string, value: unknown, code = 'TOOL_INVALID'): Readonly<Record<string, string>> | undefined {
  function bad(w: string, f: string, problem: string): never {
    throw new PipelineError('permanent', code, `${w}: field "${f}" ${problem}`)
  }
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) bad(where, field, 'must be an object of header name → value')
  const entries = Object.entries(value as Record<string, unknown>)
  if (entries.length > MAX_FORWARD_HEADERS) bad(where, field, `may hold at most ${MAX_FORWARD_HEADERS} headers; got ${entries.length}`)
  const out: Record<string, string> = {}
  for (const [rawName, v] of entries) {
    const name = rawName.toLowerCase()
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(name)) bad(where, field, `has a name that is not an HTTP header name: ${JSON.stringify(rawName.slice(0, 64))}`)
    if (RESERVED_FORWARD_HEADERS.test(name)) bad(where, `${field}.${name}`, 'is set by hookstream itself; use another header')
    if (typeof v !== 'string' || v.length > MAX_HEADER_VALUE_CHARS || /[\r\n\0]/.test(v)) {
      bad(where, `${field}.${name}`, `must be a string of at most ${MAX_HEADER_VALUE_CHARS} characters without line breaks`)
    }
    if (v === SECRET_MASK) bad(where, `${field}.${name}`, `holds the mask "${SECRET_MASK}"; send the real value, or leave ${field} out to keep the stored ones`)
    out[name] = v
  }
  return Object.freeze(out)
}

/**
 * Validates the rotatable-secret fields of a tool; the values never appear in a message.
 *
 * @example
 * parseToolSecrets('tool "gh"', { previous_secret: 'old', previous_secret_expires_at: '2026-12-01T00:00:00Z' })
 */
export function parseToolSecrets(where: string, input: ToolSecretsInput): ToolSecrets {
  const previousSecret = optionalSecret(where, 'previous_secret', input.previous_secret)
  const previousSecretExpiresAt = parseSecretExpiry(where, 'previous_secret_expires_at', input.previous_secret_expires_at)
  const forwardSecret = optionalSecret(where, 'forward_secret', input.forward_secret)
  const previousForwardSecret = optionalSecret(where, 'previous_forward_secret', input.previous_forward_secret)
  const previousForwardSecretExpiresAt = parseSecretExpiry(where, 'previous_forward_secret_expires_at', input.previous_forward_secret_expires_at)
  if (forwardSecret?.startsWith('whsec_') && Buffer.from(forwardSecret.slice(6), 'base64').length < 16) {
    bad(where, 'forward_secret', 'must hold at least 16 bytes of base64 after "whsec_"; leave it out to have one generated')
  }
  const headers = parseHeaderMap(where, 'forward_headers', input.forward_headers)
  return {
    ...(previousSecret ? { previousSecret } : {}),
    ...(previousSecret && previousSecretExpiresAt !== undefined ? { previousSecretExpiresAt } : {}),
    ...(forwardSecret ? { forwardSecret } : {}),
    ...(previousForwardSecret ? { previousForwardSecret } : {}),
    ...(previousForwardSecret && previousForwardSecretExpiresAt !== undefined ? { previousForwardSecretExpiresAt } : {}),
    ...(headers && Object.keys(headers).length > 0 ? { forwardHeaders: headers } : {}),
  }
}

/**
 * The rotatable secrets as API responses, CLI output and audit rows show them: values masked, expiry times
 * in ISO 8601, header names with masked values. Fields that are not set are left out.
 *
 * @example
 * toolSecretsToJSON(tool) // { previous_secret: '********', previous_secret_expires_at: '2026-12-01T00:00:00.000Z', forward_secret: '********' }
 */
export function toolSecretsToJSON(tool: ToolSecrets): Record<string, unknown> {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString())
  return {
    ...(tool.previousSecret ? { previous_secret: SECRET_MASK, previous_secret_expires_at: iso(tool.previousSecretExpiresAt) } : {}),
    ...(tool.forwardSecret ? { forward_secret: SECRET_MASK } : {}),
    ...(tool.previousForwardSecret
      ? { previous_forward_secret: SECRET_MASK, previous_forward_secret_expires_at: iso(tool.previousForwardSecretExpiresAt) } : {}),
    ...(tool.forwardHeaders ? { forward_headers: Object.fromEntries(Object.keys(tool.forwardHeaders).map((k) => [k, SECRET_MASK])) } : {}),
  }
}

/**
 * The secrets in force at `nowMs`: the current one first, then the previous one while it has not expired.
 *
 * @example
 * activeSecrets('new', 'old', Date.now() + 60_000) // ['new', 'old']
 */
export function activeSecrets(current: string | undefined, previous: string | undefined, previousExpiresAt: number | undefined, nowMs = Date.now()): string[] {
  const out = current ? [current] : []
  if (previous && (previousExpiresAt === undefined || previousExpiresAt > nowMs)) out.push(previous)
  return out
}

/**
 * A new forward signing secret in the Standard Webhooks form: `whsec_` + base64 of 32 random bytes.
 *
 * @example
 * generateForwardSecret() // "whsec_q3…="
 */
export function generateForwardSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`
}

/** Which of a tool's two rotatable secrets: the inbound one senders sign with, or the one forwards are signed with. */
export type SecretKind = 'inbound' | 'forward'

/**
 * The tool after a rotation: `next` becomes the current secret of `kind`, the current one becomes the
 * previous one (accepted / signed with until `previousExpiresAt`, epoch ms; undefined = until retired).
 * A previous secret already held is dropped (at most two are active).
 *
 * @example
 * rotateSecret(tool, 'inbound', 'n3w-secret', Date.now() + 86_400_000)
 */
export function rotateSecret<T extends ToolSecrets & { readonly secret: string }>(tool: T, kind: SecretKind, next: string, previousExpiresAt: number | undefined): T {
  if (kind === 'inbound') {
    const { previousSecret: _p, previousSecretExpiresAt: _e, ...rest } = tool
    return Object.freeze({ ...rest, secret: next, ...(tool.secret ? { previousSecret: tool.secret } : {}),
      ...(tool.secret && previousExpiresAt !== undefined ? { previousSecretExpiresAt: previousExpiresAt } : {}) }) as unknown as T
  }
  const { previousForwardSecret: _p, previousForwardSecretExpiresAt: _e, ...rest } = tool
  const current = tool.forwardSecret
  return Object.freeze({ ...rest, forwardSecret: next, ...(current ? { previousForwardSecret: current } : {}),
    ...(current && previousExpiresAt !== undefined ? { previousForwardSecretExpiresAt: previousExpiresAt } : {}) }) as unknown as T
}

/**
 * The tool without its previous secret of `kind` (the sender or receiver has moved to the new one).
 *
 * @example
 * retireSecret(tool, 'forward')
 */
export function retireSecret<T extends ToolSecrets>(tool: T, kind: SecretKind): T {
  if (kind === 'inbound') {
    const { previousSecret: _p, previousSecretExpiresAt: _e, ...rest } = tool
    return Object.freeze(rest) as unknown as T
  }
  const { previousForwardSecret: _p, previousForwardSecretExpiresAt: _e, ...rest } = tool
  return Object.freeze(rest) as unknown as T
}

