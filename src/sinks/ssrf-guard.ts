import { lookup as dnsLookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

/**
 * Which private destinations a forward may reach: `true` any (no guard), `false` none, or a list of CIDRs
 * (`"127.0.0.1/32"`, `"10.20.0.0/16"`, `"fd00::/8"`) allowed in spite of being private.
 */
export type AllowPrivate = boolean | readonly string[]

/** Resolves a host name to every address it has (dns.lookup with `all: true`). */
export type HostLookup = (hostname: string) => Promise<readonly { address: string; family: number }[]>

/** Options of `createSsrfGuard`. */
export interface SsrfGuardOptions {
  /** @defaultValue false: every private, loopback and link-local address is refused */
  readonly allowPrivate?: AllowPrivate
  /** @defaultValue dns.lookup(hostname, { all: true, verbatim: true }) */
  readonly lookup?: HostLookup
}

/** Why a destination was refused, or `undefined` when it may be reached. */
export type SsrfVerdict = { readonly address: string; readonly range: string } | undefined

/** A check of one URL's host, run at forward time (DNS can change between forwards). */
export type SsrfGuard = (url: URL) => Promise<SsrfVerdict>

/** Ranges a forward must not reach unless allowed: loopback, link-local, private, unspecified. */
export const FORBIDDEN_RANGES: readonly string[] = Object.freeze([
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16',
  '::/128', '::1/128', 'fc00::/7', 'fe80::/10',
])

function parseCidr(cidr: string, where: string): { network: string; prefix: number; type: 'ipv4' | 'ipv6' } {
  const [network = '', bits, extra] = cidr.trim().split('/')
  const family = isIP(network)
  const max = family === 4 ? 32 : 128
  const prefix = bits === undefined ? max : Number(bits)
  if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > max || (bits !== undefined && !/^\d+$/.test(bits))) {
    throw new RangeError(`${where}: "${cidr}" is not an address or CIDR such as "127.0.0.1/32" or "fd00::/8"`)
  }
  return { network, prefix, type: family === 4 ? 'ipv4' : 'ipv6' }
}

function blockList(cidrs: readonly string[], where: string): { list: BlockList; ranges: { list: BlockList; cidr: string }[] } {
  const list = new BlockList()
  const ranges = cidrs.map((cidr) => {
    const { network, prefix, type } = parseCidr(cidr, where)
    const one = new BlockList()
    one.addSubnet(network, prefix, type)
    list.addSubnet(network, prefix, type)
    return { list: one, cidr }
  })
  return { list, ranges }
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

/**
 * Builds the SSRF check of forward destinations: the URL's host (an address, or a name resolved with
 * dns.lookup) must have no address in a loopback, link-local, private or unspecified range
 * (`FORBIDDEN_RANGES`, IPv4-mapped IPv6 included), unless `allowPrivate` allows it. Every resolved address is
 * checked, so one private record among public ones is refused too. Resolution errors reject (the caller
 * treats them as an unreachable destination).
 *
 * @example
 * const guard = createSsrfGuard({ allowPrivate: ['127.0.0.1/32'] })
 * await guard(new URL('http://10.0.0.5/hook')) // { address: '10.0.0.5', range: '10.0.0.0/8' }
 */
export function createSsrfGuard(options: SsrfGuardOptions = {}): SsrfGuard {
  const allowPrivate = options.allowPrivate ?? false
  if (allowPrivate === true) return async () => undefined
  const forbidden = blockList(FORBIDDEN_RANGES, 'FORBIDDEN_RANGES')
  const allowed = blockList(allowPrivate === false ? [] : allowPrivate, 'allowPrivate')
  const lookup: HostLookup = options.lookup ?? ((hostname) => dnsLookup(hostname, { all: true, verbatim: true }))
  const verdict = (address: string): SsrfVerdict => {
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4'
    if (!forbidden.list.check(address, type) || allowed.list.check(address, type)) return undefined
    const range = forbidden.ranges.find((r) => r.list.check(address, type))?.cidr ?? 'a private range'
    return { address, range }
  }
  return async (url) => {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    if (isIP(host) !== 0) return verdict(host)
    const addresses = await lookup(host)
    if (addresses.length === 0) throw new Error(`host "${host}" has no address`)
    for (const { address } of addresses) {
      const refused = verdict(address)
      if (refused) return refused
    }
    return undefined
  }
}
