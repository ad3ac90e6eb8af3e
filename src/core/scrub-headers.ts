/**
 * Inbound headers that carry credentials, dropped from `metadata.headers` before an event is queued, so they
 * are neither stored nor forwarded: exact names, or `*-suffix` / `prefix-*` patterns. INGEST_SCRUB_HEADERS
 * replaces the list.
 */
export const DEFAULT_SCRUB_HEADERS: readonly string[] = Object.freeze([
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-auth-token',
  '*-secret', '*-token', '*-signature', '*-signature-256',
])

/**
 * A test of one lowercase header name against a scrub list (`DEFAULT_SCRUB_HEADERS` form: names, `*-x`
 * suffixes, `x-*` prefixes; matched case-insensitively). Throws a RangeError naming a bad entry.
 *
 * @example
 * const scrub = headerScrubber(DEFAULT_SCRUB_HEADERS)
 * scrub('x-shop-token') // true
 */
export function headerScrubber(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set<string>()
  const suffixes: string[] = []
  const prefixes: string[] = []
  for (const raw of patterns) {
    const p = raw.trim().toLowerCase()
    if (!/^(\*[a-z0-9_-]+|[a-z0-9_-]+\*|[a-z0-9_-]+)$/.test(p)) {
      throw new RangeError(`INGEST_SCRUB_HEADERS: "${raw.slice(0, 64)}" must be a header name, "*-suffix" or "prefix-*"`)
    }
    if (p.startsWith('*')) suffixes.push(p.slice(1))
    else if (p.endsWith('*')) prefixes.push(p.slice(0, -1))
    else exact.add(p)
  }
  return (name) => exact.has(name) || suffixes.some((s) => name.endsWith(s)) || prefixes.some((s) => name.startsWith(s))
}

const DEFAULT_SCRUBBED = headerScrubber(DEFAULT_SCRUB_HEADERS)

/**
 * `headers` without the ones DEFAULT_SCRUB_HEADERS matches (the same object when none does): for showing stored
 * headers, whatever INGEST_SCRUB_HEADERS was when they were kept.
 *
 * @example
 * withoutCredentialHeaders({ authorization: 'Bearer x', 'x-github-event': 'push' }) // { 'x-github-event': 'push' }
 */
export function withoutCredentialHeaders<T>(headers: Readonly<Record<string, T>>): Readonly<Record<string, T>> {
  const names = Object.keys(headers)
  if (!names.some((name) => DEFAULT_SCRUBBED(name.toLowerCase()))) return headers
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !DEFAULT_SCRUBBED(name.toLowerCase())))
}
