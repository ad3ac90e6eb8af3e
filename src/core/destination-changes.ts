import { maskUrl } from './mask-url.js'
import { PipelineError } from './errors.js'
import { SECRET_MASK } from './tool-secrets.js'
import type { Destination, DestinationInput } from './destination.js'

/**
 * A destination as the admin API and CLI receive it, with the write-only values filled in from `existing`: a
 * secret left out or holding the mask `********` keeps the stored one (the previous secret keeps its expiry),
 * headers left out are kept and a header shown masked keeps its value, and a `url` equal to the masked stored URL
 * keeps the stored URL with its credentials.
 *
 * @example
 * parseDestination(keepDestinationWriteOnly(body, stored)) // a GET → edit → PUT round trip keeps every secret
 */
export function keepDestinationWriteOnly(input: DestinationInput, existing: Destination | undefined): DestinationInput {
  if (!existing) return input
  const absent = (v: unknown) => v === undefined || v === SECRET_MASK
  const out: DestinationInput = { ...input }
  if (absent(input.secret)) out.secret = existing.secret
  if (absent(input.previous_secret)) {
    out.previous_secret = existing.previousSecret
    out.previous_secret_expires_at ??= existing.previousSecretExpiresAt === undefined ? undefined : new Date(existing.previousSecretExpiresAt).toISOString()
  }
  const headers = input.headers
  if (headers === undefined) out.headers = existing.headers
  else if (typeof headers === 'object' && headers !== null && !Array.isArray(headers)) {
    out.headers = Object.fromEntries(Object.entries(headers as Record<string, unknown>)
      .map(([k, v]) => [k, v === SECRET_MASK ? existing.headers?.[k.toLowerCase()] ?? v : v]))
  }
  if (input.url === maskUrl(existing.url)) out.url = existing.url
  return out
}

function missing(where: string, id: string): PipelineError {
  return new PipelineError('permanent', 'DESTINATION_NOT_FOUND', `${where} has no destination "${id.slice(0, 64)}"; list them with \`hookstream destinations list\` or GET /admin/tools/:id/destinations`)
}

/**
 * `list` with `d` added; throws a permanent `DESTINATION_EXISTS` when the list has its id already.
 *
 * @example
 * addDestination(tool.destinations ?? [], parseDestination(input), 'tool "gh"')
 */
export function addDestination(list: readonly Destination[], d: Destination, where: string): readonly Destination[] {
  if (list.some((x) => x.id === d.id)) {
    throw new PipelineError('permanent', 'DESTINATION_EXISTS', `${where} has a destination "${d.id}" already; change it with PUT or PATCH, or \`hookstream destinations enable|disable\``)
  }
  return [...list, d]
}

/**
 * `list` with destination `id` replaced by what `change` makes of it; throws a permanent `DESTINATION_NOT_FOUND`
 * when there is none.
 *
 * @example
 * updateDestination(list, 'ci', (d) => ({ ...d, enabled: false }), 'tool "gh"')
 */
export function updateDestination(list: readonly Destination[], id: string, change: (d: Destination) => Destination, where: string): readonly Destination[] {
  if (!list.some((x) => x.id === id)) throw missing(where, id)
  return list.map((x) => (x.id === id ? change(x) : x))
}

/**
 * `list` without destination `id`; throws a permanent `DESTINATION_NOT_FOUND` when there is none.
 *
 * @example
 * removeDestination(list, 'ci', 'tool "gh"')
 */
export function removeDestination(list: readonly Destination[], id: string, where: string): readonly Destination[] {
  if (!list.some((x) => x.id === id)) throw missing(where, id)
  return list.filter((x) => x.id !== id)
}

/**
 * The destination after a rotation of its signing secret: `next` signs from now on, and the current secret (if it
 * had one of its own) keeps signing too until `previousExpiresAt` (epoch ms; undefined = until retired). A previous
 * secret already held is dropped: at most two sign at once.
 *
 * @example
 * rotateDestinationSecret(d, generateForwardSecret(), Date.now() + 86_400_000)
 */
export function rotateDestinationSecret(d: Destination, next: string, previousExpiresAt: number | undefined): Destination {
  const { previousSecret: _p, previousSecretExpiresAt: _e, ...rest } = d
  return Object.freeze({ ...rest, secret: next, ...(d.secret ? { previousSecret: d.secret } : {}),
    ...(d.secret && previousExpiresAt !== undefined ? { previousSecretExpiresAt: previousExpiresAt } : {}) })
}

/**
 * The destination without its previous signing secret (its receiver verifies with the new one).
 *
 * @example
 * retireDestinationSecret(d)
 */
export function retireDestinationSecret(d: Destination): Destination {
  const { previousSecret: _p, previousSecretExpiresAt: _e, ...rest } = d
  return Object.freeze(rest)
}
