import jsonata from 'jsonata'
import { formatDuration } from './duration.js'
import { PipelineError } from './errors.js'
import { formatSize, parseSize } from './size.js'
import { DEFAULT_DESTINATION_ID, destinationToJSON, parseDestinations, type Destination } from './destination.js'
import { holdsUrlMask, maskUrl, URL_MASK_HELD } from './mask-url.js'
import { parseDuration as durationField, parseRetryPolicy, retryPolicyToJSON, type RetryPolicy } from './retry-policy.js'
import { parseToolSecrets, toolSecretsToJSON, type ToolSecrets, type ToolSecretsInput } from './tool-secrets.js'

/** Signature schemes ingest can verify. */
export const PROVIDERS = ['github', 'gitlab', 'bitbucket', 'jira', 'standard', 'generic'] as const
export type Provider = (typeof PROVIDERS)[number]

export const PROCESSING_MODES = ['store', 'store_and_forward', 'transform_and_store'] as const
export type ProcessingMode = (typeof PROCESSING_MODES)[number]

export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry-policy.js'

/** Options of the `generic` provider's HMAC check. */
export interface GenericSignature {
  /** Header holding the signature. @defaultValue "x-signature" */
  readonly header: string
  /** @defaultValue "hex" */
  readonly encoding: 'hex' | 'base64'
  /** Text before the signature in the header, e.g. `"sha256="`. @defaultValue "" */
  readonly prefix: string
}

/**
 * Where a `generic` tool's sender puts its delivery id: a request header, or a JSON pointer (RFC 6901) into the
 * payload whose value is a string or a number. Without it a generic event gets a fresh UUID, so its re-sends
 * are never recognised as duplicates.
 */
export type DeliveryIdSource = { readonly header: string } | { readonly pointer: string }

/** A tool, validated: one webhook sender and what hookstream does with its events (rotatable secrets: ToolSecrets). */
export interface ToolConfig extends ToolSecrets {
  readonly id: string
  readonly provider: Provider
  /** Signing secret (write-only: never returned by the admin API, never logged). Empty only for generic + verify none. */
  readonly secret: string
  readonly tenantId: string
  readonly processingMode: ProcessingMode
  readonly forwardUrl?: string
  /** Transformation rules (JSONata expression or object of field → expression), for `transform_and_store`. */
  readonly transform?: string | Readonly<Record<string, string>>
  /** Wall-clock budget of one event's transform in milliseconds (`transform_timeout`). @defaultValue 100 */
  readonly transformTimeoutMs: number
  readonly retryPolicy: RetryPolicy
  readonly enabled: boolean
  /** `generic` only: how the signature is carried, or `'none'` to accept unsigned requests explicitly. */
  readonly signature?: GenericSignature | 'none'
  /** `generic` only: where the delivery id is. @defaultValue unset: a fresh UUID per request */
  readonly deliveryId?: DeliveryIdSource
  /**
   * Largest request body this tool accepts, in bytes (`max_body`, e.g. `"1MiB"`); larger ones get 413 without
   * being read. INGEST_MAX_BODY still caps it. @defaultValue unset: INGEST_MAX_BODY
   */
  readonly maxBodyBytes?: number
  /**
   * Where the tool's events are fanned out to after they are stored, each with its own filter, retries and
   * outcome (`destinations`). The `forward_url` shorthand is not in this list (see `destinationsOf`). @defaultValue none
   */
  readonly destinations?: readonly Destination[]
}

/** A tool in its JSON/YAML shape (snake_case, durations as strings), as users write it. */
export interface ToolInput extends ToolSecretsInput {
  id?: unknown
  provider?: unknown
  secret?: unknown
  tenant_id?: unknown
  processing_mode?: unknown
  forward_url?: unknown
  transform?: unknown
  transform_timeout?: unknown
  retry_policy?: unknown
  enabled?: unknown
  signature?: unknown
  delivery_id?: unknown
  max_body?: unknown
  destinations?: unknown
}

function bad(where: string, field: string, problem: string): never {
  throw new PipelineError('permanent', 'TOOL_INVALID', `${where}: field "${field}" ${problem}`)
}

/** Most fields a tool's `transform` object has: 500. */
export const MAX_TRANSFORM_FIELDS = 500
/** Most characters of a tool's `transform` (field names and JSONata together): 64 KiB. */
export const MAX_TRANSFORM_CHARS = 64 * 1024

/** Budget of one event's transform when the tool sets no `transform_timeout`: 100 ms. */
export const DEFAULT_TRANSFORM_TIMEOUT_MS = 100
const MAX_TRANSFORM_TIMEOUT_MS = 10_000

// saving a tool compiles its rules, so an expression that cannot compile is refused before any event meets it
function compileTransform(where: string, transform: string | Readonly<Record<string, string>>): void {
  const rules = typeof transform === 'string' ? [[undefined, transform] as const] : Object.entries(transform)
  for (const [field, text] of rules) {
    try {
      jsonata(text)
    } catch (err) {
      bad(where, field === undefined ? 'transform' : `transform.${field}`, `does not compile as JSONata: ${(err as Error).message}`)
    }
  }
}

function signature(where: string, provider: Provider, value: unknown): ToolConfig['signature'] {
  if (provider !== 'generic') {
    if (value !== undefined) bad(where, 'signature', `is only for provider "generic"; provider "${provider}" has a fixed scheme`)
    return undefined
  }
  if (value === 'none') return 'none'
  if (value === undefined) return { header: 'x-signature', encoding: 'hex', prefix: '' }
  if (typeof value !== 'object' || value === null) bad(where, 'signature', 'must be "none" or { header, encoding, prefix }')
  const s = value as Record<string, unknown>
  const header = s.header ?? 'x-signature'
  const encoding = s.encoding ?? 'hex'
  const prefix = s.prefix ?? ''
  if (typeof header !== 'string' || !/^[a-z0-9-]+$/i.test(header)) bad(where, 'signature.header', 'must be a header name')
  if (encoding !== 'hex' && encoding !== 'base64') bad(where, 'signature.encoding', 'must be "hex" or "base64"')
  if (typeof prefix !== 'string') bad(where, 'signature.prefix', 'must be a string')
  return { header: header.toLowerCase(), encoding, prefix }
}

function deliveryIdSource(where: string, provider: Provider, value: unknown): DeliveryIdSource | undefined {
  if (value === undefined || value === null) return undefined
  if (provider !== 'generic') bad(where, 'delivery_id', `is only for provider "generic"; provider "${provider}" sends its own delivery id`)
  const v = value as Record<string, unknown>
  if (typeof value !== 'object' || Object.keys(v).length !== 1) bad(where, 'delivery_id', 'must be { header: "<name>" } or { pointer: "/json/pointer" }')
  if (v.header !== undefined) {
    if (typeof v.header !== 'string' || !/^[a-z0-9-]{1,100}$/i.test(v.header)) bad(where, 'delivery_id.header', 'must be a header name')
    return { header: v.header.toLowerCase() }
  }
  if (typeof v.pointer !== 'string' || !/^(\/[^/]*)+$/.test(v.pointer) || v.pointer.length > 200) {
    bad(where, 'delivery_id.pointer', `must be a JSON pointer such as "/data/id" (at most 200 characters); got ${JSON.stringify(v.pointer)}`)
  }
  return { pointer: v.pointer }
}

const MIN_MAX_BODY = 1024
const MAX_MAX_BODY = 1024 ** 3

function maxBody(where: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined
  const bytes = typeof value === 'string' || typeof value === 'number' ? parseSize(value) : undefined
  if (bytes === undefined || bytes < MIN_MAX_BODY || bytes > MAX_MAX_BODY) {
    bad(where, 'max_body', `must be a size from 1KiB to 1GiB such as "256KiB" or "1MiB"; got ${JSON.stringify(value)}`)
  }
  return bytes
}

/**
 * What a tool id looks like: 1–128 letters, digits, ".", "_" or "-", starting with a letter or digit. Ingest
 * answers 404 for a URL whose id does not match, before any lookup.
 */
export const TOOL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/**
 * Validates a tool in its user-facing shape and returns the typed ToolConfig. Throws a permanent
 * PipelineError (`TOOL_INVALID`) naming the field; the secret's value never appears in the message.
 *
 * @example
 * parseTool({ id: 'gh-main', provider: 'github', secret: 's3cret', processing_mode: 'store' })
 */
export function parseTool(input: ToolInput, where = 'tool'): ToolConfig {
  const { id } = input
  if (typeof id !== 'string' || !TOOL_ID_PATTERN.test(id)) {
    bad(where, 'id', `must be 1–128 characters of letters, digits, ".", "_" or "-"; got ${JSON.stringify(id)}`)
  }
  const at = `${where} "${id}"`
  const provider = input.provider
  if (typeof provider !== 'string' || !(PROVIDERS as readonly string[]).includes(provider)) {
    bad(at, 'provider', `must be one of ${PROVIDERS.join(', ')}; got ${JSON.stringify(provider)}`)
  }
  const mode = input.processing_mode ?? 'store'
  if (typeof mode !== 'string' || !(PROCESSING_MODES as readonly string[]).includes(mode)) {
    bad(at, 'processing_mode', `must be one of ${PROCESSING_MODES.join(', ')}; got ${JSON.stringify(mode)}`)
  }
  const sig = signature(at, provider as Provider, input.signature)
  const deliveryId = deliveryIdSource(at, provider as Provider, input.delivery_id)
  const secret = input.secret ?? ''
  if (typeof secret !== 'string') bad(at, 'secret', 'must be a string')
  if (secret === '' && sig !== 'none') {
    bad(at, 'secret', provider === 'generic'
      ? 'is required; set a signing secret, or signature: "none" to accept unsigned requests explicitly'
      : `is required for provider "${provider}"`)
  }
  // the Standard Webhooks key is the base64 after whsec_: one that decodes to nothing would refuse every request
  if (provider === 'standard' && secret.startsWith('whsec_') && Buffer.from(secret.slice(6), 'base64').length === 0) {
    bad(at, 'secret', 'is "whsec_" followed by no base64 key; give the whole secret the sender shows (whsec_ and its base64 key)')
  }
  const tenant = input.tenant_id ?? 'default'
  if (typeof tenant !== 'string' || tenant === '') bad(at, 'tenant_id', 'must be a non-empty string when given')
  let forwardUrl: string | undefined
  if (input.forward_url !== undefined && input.forward_url !== null && input.forward_url !== '') {
    if (typeof input.forward_url !== 'string' || !URL.canParse(input.forward_url) ||
        !/^https?:$/.test(new URL(input.forward_url).protocol)) {
      bad(at, 'forward_url', `must be an http(s) URL; got ${typeof input.forward_url === 'string' ? JSON.stringify(maskUrl(input.forward_url)) : typeof input.forward_url}`)
    }
    if (holdsUrlMask(input.forward_url)) bad(at, 'forward_url', URL_MASK_HELD)
    forwardUrl = input.forward_url
  }
  if (mode === 'store_and_forward' && !forwardUrl) bad(at, 'forward_url', 'is required when processing_mode is store_and_forward')
  const transform = input.transform ?? undefined
  if (transform !== undefined) {
    const ok = typeof transform === 'string' ||
      (typeof transform === 'object' && transform !== null && !Array.isArray(transform) &&
        Object.values(transform).every((v) => typeof v === 'string'))
    if (!ok) bad(at, 'transform', 'must be a JSONata expression or an object of field → JSONata expression')
  }
  if (mode === 'transform_and_store' && transform === undefined) bad(at, 'transform', 'is required when processing_mode is transform_and_store')
  if (transform !== undefined) {
    // every process compiles each tool's rules whenever it reloads the tool list: their size is bounded
    const rules = typeof transform === 'string' ? [transform] : Object.entries(transform as Record<string, string>).flat()
    const chars = rules.reduce((sum, r) => sum + r.length, 0)
    if (rules.length > 2 * MAX_TRANSFORM_FIELDS || chars > MAX_TRANSFORM_CHARS) {
      bad(at, 'transform', `must hold at most ${MAX_TRANSFORM_FIELDS} fields and ${MAX_TRANSFORM_CHARS} characters of field names and ` +
        `JSONata in all; got ${typeof transform === 'string' ? 1 : rules.length / 2} and ${chars}`)
    }
    compileTransform(at, transform as string | Record<string, string>)
  }
  const transformTimeoutMs = durationField(at, 'transform_timeout', input.transform_timeout, DEFAULT_TRANSFORM_TIMEOUT_MS, 'TOOL_INVALID')
  if (transformTimeoutMs < 1 || transformTimeoutMs > MAX_TRANSFORM_TIMEOUT_MS) {
    bad(at, 'transform_timeout', `must be between 1ms and ${formatDuration(MAX_TRANSFORM_TIMEOUT_MS)}; got ${JSON.stringify(input.transform_timeout)}`)
  }
  const maxBodyBytes = maxBody(at, input.max_body)
  const enabled = input.enabled ?? true
  if (typeof enabled !== 'boolean') bad(at, 'enabled', `must be true or false; got ${JSON.stringify(enabled)}`)
  const destinations = parseDestinations(at, input.destinations)
  return Object.freeze({
    id, provider: provider as Provider, secret, tenantId: tenant, processingMode: mode as ProcessingMode,
    ...(forwardUrl ? { forwardUrl } : {}),
    ...(transform !== undefined ? { transform: transform as ToolConfig['transform'] } : {}),
    transformTimeoutMs,
    retryPolicy: parseRetryPolicy(at, input.retry_policy, 'TOOL_INVALID'), enabled,
    ...(sig !== undefined ? { signature: sig } : {}),
    ...parseToolSecrets(at, input),
    ...(deliveryId !== undefined ? { deliveryId } : {}),
    ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
    ...(destinations.length > 0 ? { destinations } : {}),
  })
}

/**
 * The tool in its user-facing shape with every secret masked and the forward URL's credentials and query
 * values masked (`maskUrl`), for API responses, CLI output, audit rows and logs.
 *
 * @example
 * toolToJSON(tool) // { id: 'gh-main', provider: 'github', secret: '********', … }
 */
export function toolToJSON(tool: ToolConfig): Record<string, unknown> {
  return {
    id: tool.id, provider: tool.provider, secret: tool.secret ? '********' : '', tenant_id: tool.tenantId,
    processing_mode: tool.processingMode, forward_url: tool.forwardUrl === undefined ? null : maskUrl(tool.forwardUrl), transform: tool.transform ?? null,
    transform_timeout: formatDuration(tool.transformTimeoutMs),
    retry_policy: retryPolicyToJSON(tool.retryPolicy),
    enabled: tool.enabled,
    ...(tool.signature !== undefined ? { signature: tool.signature } : {}),
    ...toolSecretsToJSON(tool),
    ...(tool.deliveryId !== undefined ? { delivery_id: tool.deliveryId } : {}),
    ...(tool.maxBodyBytes !== undefined ? { max_body: formatSize(tool.maxBodyBytes) } : {}),
    ...(tool.destinations ? { destinations: tool.destinations.map(destinationToJSON) } : {}),
  }
}

/**
 * Where tools are looked up by id (the ToolRegistry, or a Map in tests). Resolves `undefined` for an unknown
 * id; rejects with an infrastructure PipelineError when the tools cannot be loaded at all.
 */
export interface ToolLookup {
  get(id: string): Promise<ToolConfig | undefined>
  /**
   * The lookup for the tool of an already accepted event, which may be newer than `get`'s cache (the
   * ToolRegistry reads such a miss from the store). @defaultValue `get`
   */
  getQueued?(id: string): Promise<ToolConfig | undefined>
}

/**
 * Every destination of a tool: the `forward_url` shorthand first (id `default`, in `store_and_forward` mode,
 * signed with the tool's forward secret, with its forward headers and retry policy), then `destinations`.
 *
 * @example
 * destinationsOf(tool).map((d) => d.id) // ['default', 'billing', 'ci']
 */
export function destinationsOf(tool: ToolConfig): readonly Destination[] {
  const shorthand: Destination[] = tool.processingMode === 'store_and_forward' && tool.forwardUrl ? [Object.freeze({
    id: DEFAULT_DESTINATION_ID, url: tool.forwardUrl, enabled: true, eventTypes: [], retryPolicy: tool.retryPolicy,
    ...(tool.forwardHeaders ? { headers: tool.forwardHeaders } : {}),
    ...(tool.forwardSecret ? { secret: tool.forwardSecret } : {}),
    ...(tool.previousForwardSecret ? { previousSecret: tool.previousForwardSecret } : {}),
    ...(tool.previousForwardSecretExpiresAt !== undefined ? { previousSecretExpiresAt: tool.previousForwardSecretExpiresAt } : {}),
  })] : []
  return [...shorthand, ...(tool.destinations ?? [])]
}
