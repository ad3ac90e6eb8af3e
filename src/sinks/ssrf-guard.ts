import { lookup as dnsLookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'

/**
 * Which special-purpose destinations a forward may reach: `true` any (no guard), `false` none, or a list of
 * CIDRs (`"127.0.0.1/32"`, `"10.20.0.0/16"`, `"fd00::/8"`) allowed in spite of being special-purpose.
 */
export type AllowPrivate = boolean | readonly string[]

/** Resolves a host name to every address it has (dns.lookup with `all: true`). */
export type HostLookup = (hostname: string) => Promise<readonly { address: string; family: number }[]>

/** Options of `createEgressPolicy` and `createSsrfGuard`. */
export interface SsrfGuardOptions {
  /** @defaultValue false: every address in `SPECIAL_PURPOSE_RANGES` is refused */
  readonly allowPrivate?: AllowPrivate
  /** @defaultValue dns.lookup(hostname, { all: true, verbatim: true }) */
  readonly lookup?: HostLookup
}

/** Why a destination was refused (the address, the CIDR and its IANA name), or `undefined` when it may be reached. */
export type SsrfVerdict = { readonly address: string; readonly range: string; readonly name: string } | undefined

/** A check of one URL's host, run at forward time (DNS can change between forwards). */
export type SsrfGuard = (url: URL) => Promise<SsrfVerdict>

/**
 * The IANA IPv4 and IPv6 special-purpose address registries (plus multicast, the deprecated IPv4-compatible
 * and site-local IPv6 blocks): a forward refuses these unless FORWARD_ALLOW_PRIVATE allows them. An address
 * ipaddr.js classifies as anything but `unicast` is refused as well, under its ipaddr.js range name.
 */
export const SPECIAL_PURPOSE_RANGES: readonly { readonly cidr: string; readonly name: string }[] = Object.freeze([
  { cidr: '0.0.0.0/8', name: 'this network' },
  { cidr: '10.0.0.0/8', name: 'private-use' },
  { cidr: '100.64.0.0/10', name: 'shared address space (CGNAT)' },
  { cidr: '127.0.0.0/8', name: 'loopback' },
  { cidr: '169.254.0.0/16', name: 'link-local' },
  { cidr: '172.16.0.0/12', name: 'private-use' },
  { cidr: '192.0.0.0/24', name: 'IETF protocol assignments' },
  { cidr: '192.0.2.0/24', name: 'documentation (TEST-NET-1)' },
  { cidr: '192.31.196.0/24', name: 'AS112-v4' },
  { cidr: '192.52.193.0/24', name: 'AMT' },
  { cidr: '192.88.99.0/24', name: 'deprecated 6to4 relay anycast' },
  { cidr: '192.168.0.0/16', name: 'private-use' },
  { cidr: '192.175.48.0/24', name: 'AS112 direct delegation' },
  { cidr: '198.18.0.0/15', name: 'benchmarking' },
  { cidr: '198.51.100.0/24', name: 'documentation (TEST-NET-2)' },
  { cidr: '203.0.113.0/24', name: 'documentation (TEST-NET-3)' },
  { cidr: '224.0.0.0/4', name: 'multicast' },
  { cidr: '240.0.0.0/4', name: 'reserved' },
  { cidr: '255.255.255.255/32', name: 'limited broadcast' },
  { cidr: '::/128', name: 'unspecified' },
  { cidr: '::1/128', name: 'loopback' },
  { cidr: '::/96', name: 'IPv4-compatible IPv6 (deprecated)' },
  { cidr: '::ffff:0:0/96', name: 'IPv4-mapped IPv6' },
  { cidr: '64:ff9b::/96', name: 'IPv4/IPv6 translation (NAT64)' },
  { cidr: '64:ff9b:1::/48', name: 'local-use IPv4/IPv6 translation' },
  { cidr: '100::/64', name: 'discard-only' },
  { cidr: '2001::/23', name: 'IETF protocol assignments' },
  { cidr: '2001::/32', name: 'Teredo' },
  { cidr: '2001:db8::/32', name: 'documentation' },
  { cidr: '2002::/16', name: '6to4' },
  { cidr: '2620:4f:8000::/48', name: 'AS112-v6' },
  { cidr: '3fff::/20', name: 'documentation' },
  { cidr: '5f00::/16', name: 'segment routing (SRv6) SIDs' },
  { cidr: 'fc00::/7', name: 'unique-local' },
  { cidr: 'fe80::/10', name: 'link-local' },
  { cidr: 'fec0::/10', name: 'site-local (deprecated)' },
  { cidr: 'ff00::/8', name: 'multicast' },
])

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number]

function parseCidr(cidr: string, where: string): Cidr {
  const text = cidr.trim()
  const [network = '', bits, extra] = text.split('/')
  if (isIP(network) !== 0 && extra === undefined && (bits === undefined || /^\d+$/.test(bits))) {
    try {
      return bits === undefined ? [ipaddr.parse(network), isIP(network) === 4 ? 32 : 128] : ipaddr.parseCIDR(text)
    } catch { /* reported below */ }
  }
  throw new RangeError(`${where}: "${cidr}" is not an address or CIDR such as "127.0.0.1/32" or "fd00::/8"`)
}

function contains([network, prefix]: Cidr, address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  return address.kind() === network.kind() && address.match(network, prefix)
}

const SPECIAL: readonly { range: Cidr; cidr: string; name: string }[] =
  SPECIAL_PURPOSE_RANGES.map((r) => ({ ...r, range: parseCidr(r.cidr, 'SPECIAL_PURPOSE_RANGES') }))
    // most specific first, so 2001::/32 is named Teredo rather than the /23 around it
    .sort((a, b) => b.range[1] - a.range[1])

/**
 * The special-purpose range an address is in (`{ cidr, name }`), or undefined for a globally reachable
 * unicast address. Accepts any textual IPv4/IPv6 form ipaddr.js reads.
 *
 * @example
 * classifyAddress('198.18.0.1') // { cidr: '198.18.0.0/15', name: 'benchmarking' }
 * classifyAddress('8.8.8.8')    // undefined
 */
export function classifyAddress(address: string): { readonly cidr: string; readonly name: string } | undefined {
  const parsed = ipaddr.parse(address)
  const hit = SPECIAL.find((r) => contains(r.range, parsed))
  if (hit) return { cidr: hit.cidr, name: hit.name }
  const kind = parsed.range()
  return kind === 'unicast' ? undefined : { cidr: `${address}/${parsed.kind() === 'ipv4' ? 32 : 128}`, name: kind }
}

/**
 * Reads FORWARD_ALLOW_PRIVATE's value: `"true"`/`"false"`, or a comma-separated list of CIDRs. Throws a
 * RangeError naming the entry that is not a CIDR.
 *
 * @example
 * parseAllowPrivate('127.0.0.1/32, ::1') // ['127.0.0.1/32', '::1']
 */
export function parseAllowPrivate(value: string): AllowPrivate {
  const v = value.trim().toLowerCase()
  if (v === 'true') return true
  if (v === 'false' || v === '') return false
  const cidrs = value.split(',').map((s) => s.trim()).filter(Boolean)
  for (const cidr of cidrs) parseCidr(cidr, 'FORWARD_ALLOW_PRIVATE')
  return cidrs
}

/** Thrown (code `FORWARD_URL_FORBIDDEN`) when a destination resolves to an address the policy refuses. */
export class EgressRefusedError extends Error {
  override readonly name = 'EgressRefusedError'
  /** Stable code the forward sink maps to a permanent failure. */
  readonly code = 'FORWARD_URL_FORBIDDEN'
  constructor(readonly verdict: NonNullable<SsrfVerdict>, host: string) {
    super(`host "${host}" is ${verdict.address}, in the ${verdict.name} range ${verdict.range}`)
  }
}

/** The egress policy of forward destinations: classify addresses, resolve a host once to an approved address. */
export interface EgressPolicy {
  /** Why this address is refused, or undefined when it may be reached. */
  verdict(address: string): SsrfVerdict
  /**
   * Resolves `host` once (an address literal is not resolved), checks EVERY address, and resolves with them
   * all, in the resolver's order, to connect to; rejects with EgressRefusedError when any address is
   * refused, and with the lookup's error when resolution fails.
   */
  resolve(host: string): Promise<readonly { readonly address: string; readonly family: 4 | 6 }[]>
}

/**
 * Builds the egress policy of forward destinations: an address in `SPECIAL_PURPOSE_RANGES` (or any address
 * ipaddr.js does not call `unicast`) is refused unless `allowPrivate` allows it. Every resolved address is
 * checked, so one special-purpose record among public ones is refused too.
 *
 * @example
 * const policy = createEgressPolicy({ allowPrivate: ['127.0.0.2/32'] })
 * await policy.resolve('127.0.0.2') // [{ address: '127.0.0.2', family: 4 }]
 */
export function createEgressPolicy(options: SsrfGuardOptions = {}): EgressPolicy {
  const allowPrivate = options.allowPrivate ?? false
  const allowed = allowPrivate === true || allowPrivate === false ? [] : allowPrivate.map((c) => parseCidr(c, 'allowPrivate'))
  const lookup: HostLookup = options.lookup ?? ((hostname) => dnsLookup(hostname, { all: true, verbatim: true }))
  const verdict = (address: string): SsrfVerdict => {
    if (allowPrivate === true) return undefined
    const special = classifyAddress(address)
    if (!special) return undefined
    const parsed = ipaddr.parse(address)
    if (allowed.some((cidr) => contains(cidr, parsed))) return undefined
    return { address, range: special.cidr, name: special.name }
  }
  return {
    verdict,
    async resolve(hostname) {
      const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
      const literal = isIP(host)
      const addresses = literal !== 0 ? [{ address: host, family: literal }] : await lookup(host)
      if (addresses.length === 0) throw new Error(`host "${host}" has no address`)
      for (const { address } of addresses) {
        const refused = verdict(address)
        if (refused) throw new EgressRefusedError(refused, host)
      }
      return addresses.map(({ address }) => ({ address, family: isIP(address) === 6 ? 6 as const : 4 as const }))
    },
  }
}

/**
 * Builds the SSRF check of one URL on top of `createEgressPolicy`: resolves with the verdict of the first
 * refused address, or undefined. Resolution errors reject (the caller treats them as unreachable).
 *
 * @example
 * const guard = createSsrfGuard({ allowPrivate: ['127.0.0.1/32'] })
 * await guard(new URL('http://10.0.0.5/hook')) // { address: '10.0.0.5', range: '10.0.0.0/8', name: 'private-use' }
 */
export function createSsrfGuard(options: SsrfGuardOptions = {}): SsrfGuard {
  const policy = createEgressPolicy(options)
  return async (url) => {
    try {
      await policy.resolve(url.hostname)
      return undefined
    } catch (err) {
      if (err instanceof EgressRefusedError) return err.verdict
      throw err
    }
  }
}
