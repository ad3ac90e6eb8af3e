import { destinationToInput, type DestinationInput } from './destination.js'
import { keepDestinationWriteOnly } from './destination-changes.js'
import { maskUrl } from './mask-url.js'
import type { ToolConfig, ToolInput } from './tool.js'
import { generateForwardSecret, SECRET_MASK } from './tool-secrets.js'

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString())

/**
 * A replacement of a stored tool as the admin API and CLI receive it, with the write-only values filled in
 * from `existing`: a secret field left out or holding the mask `********` keeps the stored value (the
 * previous secrets keep their expiry), and a `forward_url` equal to the masked stored URL (what GET shows)
 * keeps the stored URL with its credentials.
 *
 * @example
 * parseTool(keepWriteOnly(body, await store.get(id))) // a GET → edit → PUT round trip keeps every secret
 */
export function keepWriteOnly(input: ToolInput, existing: ToolConfig | undefined): ToolInput {
  if (!existing) return input
  const absent = (v: unknown) => v === undefined || v === SECRET_MASK
  const out: ToolInput = { ...input }
  if (absent(input.secret)) out.secret = existing.secret
  if (absent(input.previous_secret)) {
    out.previous_secret = existing.previousSecret
    out.previous_secret_expires_at ??= iso(existing.previousSecretExpiresAt)
  }
  if (absent(input.forward_secret)) out.forward_secret = existing.forwardSecret
  if (absent(input.previous_forward_secret)) {
    out.previous_forward_secret = existing.previousForwardSecret
    out.previous_forward_secret_expires_at ??= iso(existing.previousForwardSecretExpiresAt)
  }
  const headers = input.forward_headers
  if (headers === undefined) out.forward_headers = existing.forwardHeaders
  else if (typeof headers === 'object' && headers !== null && !Array.isArray(headers)) {
    // a header shown masked keeps its stored value; others are replaced
    out.forward_headers = Object.fromEntries(Object.entries(headers as Record<string, unknown>)
      .map(([k, v]) => [k, v === SECRET_MASK ? existing.forwardHeaders?.[k.toLowerCase()] ?? v : v]))
  }
  if (existing.forwardUrl && input.forward_url === maskUrl(existing.forwardUrl)) out.forward_url = existing.forwardUrl
  // destinations left out are kept; listed ones keep their stored write-only values where they show the mask
  if (input.destinations === undefined) out.destinations = existing.destinations?.map(destinationToInput)
  else if (Array.isArray(input.destinations)) {
    const stored = new Map((existing.destinations ?? []).map((d) => [d.id, d]))
    out.destinations = input.destinations.map((d: unknown) => {
      const id = typeof d === 'object' && d !== null ? (d as { id?: unknown }).id : undefined
      return typeof id === 'string' && stored.has(id) ? keepDestinationWriteOnly(d as DestinationInput, stored.get(id)) : d
    })
  }
  return out
}

/** A tool with the signing secrets `withSigningSecrets` generated, each to be shown once. */
export interface WithSigningSecrets {
  readonly tool: ToolConfig
  /** The forward URL's generated `forward_secret`, when one was generated. */
  readonly generated?: string
  /** The generated secret of each new destination that came without one, by destination id. */
  readonly destinationSecrets?: Readonly<Record<string, string>>
}

/**
 * The tool with a signing secret for every forward destination: a `whsec_…` secret is generated for the forward
 * URL when it has none, and for each destination that is new (not in `existing`) and has none, so no destination
 * signs with the tool's inbound secret or shares another's key. A stored destination keeps what it has. Show the
 * generated secrets to the operator once and never again.
 *
 * @example
 * const { tool, generated, destinationSecrets } = withSigningSecrets(parseTool(input), await store.get(id))
 * // generated: "whsec_…" or undefined; destinationSecrets: { ci: "whsec_…" } or undefined
 */
export function withSigningSecrets(tool: ToolConfig, existing?: ToolConfig): WithSigningSecrets {
  const generated = tool.forwardUrl && !tool.forwardSecret ? generateForwardSecret() : undefined
  const stored = new Set((existing?.destinations ?? []).map((d) => d.id))
  const destinationSecrets: Record<string, string> = {}
  const destinations = tool.destinations?.map((d) => {
    if (d.secret || stored.has(d.id)) return d
    const secret = generateForwardSecret()
    destinationSecrets[d.id] = secret
    return Object.freeze({ ...d, secret })
  })
  const generatedAny = Object.keys(destinationSecrets).length > 0
  if (!generated && !generatedAny) return { tool }
  return {
    tool: Object.freeze({ ...tool, ...(generated ? { forwardSecret: generated } : {}), ...(generatedAny && destinations ? { destinations: Object.freeze(destinations) } : {}) }),
    generated, destinationSecrets: generatedAny ? destinationSecrets : undefined,
  }
}
