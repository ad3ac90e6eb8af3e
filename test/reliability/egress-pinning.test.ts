import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer, type Server } from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import { ForwardSink } from '../../src/sinks/forward.js'
import { classifyAddress, createEgressPolicy, type HostLookup } from '../../src/sinks/ssrf-guard.js'
import { makeEvent } from '../helpers/events.js'

// Safety net for every test here: each socket undici opens goes through net.connect / tls.connect. The spy
// records the address and refuses (throws) anything outside 127.0.0.0/8, so no packet can leave loopback even
// when the guard under test is broken.
const connects: string[] = []
const realNet = net.connect
const realTls = tls.connect
function loopbackOnly(args: unknown[]): void {
  const opts = (typeof args[0] === 'object' && args[0] !== null ? args[0] : { host: args[1] }) as { host?: string; path?: string; lookup?: unknown }
  const host = opts.host ?? 'localhost'
  connects.push(host)
  if (opts.path !== undefined || opts.lookup !== undefined || !/^127\.\d+\.\d+\.\d+$/.test(host)) {
    throw new Error(`test safety net: refused to open a socket to ${JSON.stringify(host)} (only 127.x addresses, no lookup)`)
  }
}

const Egress = suite('forward egress: resolve once, check every address, connect to the checked one')
Egress.before(() => {
  ;(net as { connect: unknown }).connect = (...args: unknown[]) => { loopbackOnly(args); return (realNet as (...a: unknown[]) => net.Socket)(...args) }
  ;(tls as { connect: unknown }).connect = (...args: unknown[]) => { loopbackOnly(args); return (realTls as (...a: unknown[]) => tls.TLSSocket)(...args) }
})
Egress.after(() => {
  ;(net as { connect: unknown }).connect = realNet
  ;(tls as { connect: unknown }).connect = realTls
})
Egress.before.each(() => { connects.length = 0 })

interface CountingReceiver { readonly port: number; requests: number; connections: number; close(): Promise<void> }

/** An HTTP receiver on one loopback address that counts requests and TCP connections. */
async function receiverOn(host: string, port = 0, status = 200): Promise<CountingReceiver> {
  const r = { port: 0, requests: 0, connections: 0 } as CountingReceiver & { server: Server }
  const server = createServer((req, res) => { r.requests++; req.resume(); req.on('end', () => res.writeHead(status).end('ok')) })
  server.on('connection', () => { r.connections++ })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve) })
  Object.assign(r, { port: (server.address() as net.AddressInfo).port })
  r.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  return r
}

/** A lookup that answers `first` to the first resolution and `later` to any other, counting calls. */
function scriptedLookup(first: string, later: string): HostLookup & { calls: number } {
  const fn = (async () => {
    fn.calls++
    const address = fn.calls === 1 ? first : later
    return [{ address, family: net.isIP(address) }]
  }) as unknown as HostLookup & { calls: number }
  fn.calls = 0
  return fn
}

const tool = (forwardUrl: string) => ({ id: 'gh-main', secret: 's', forwardUrl })

Egress('a second DNS answer cannot redirect the connection: only the checked 127.0.0.2 receives the POST, never 127.0.0.3', async () => {
  const allowed = await receiverOn('127.0.0.2')
  const other = await receiverOn('127.0.0.3', allowed.port)
  const lookup = scriptedLookup('127.0.0.2', '127.0.0.3')
  const sink = new ForwardSink({ allowPrivate: ['127.0.0.2/32'], lookup })
  try {
    const failures = await sink.write([{ event: makeEvent(), tool: tool(`http://rebind.test:${allowed.port}/hook`) }])
    assert.equal([...failures.values()].map((f) => f.code), [])
    assert.is(allowed.requests, 1)
    assert.is(other.requests, 0)
    assert.is(lookup.calls, 1, 'the host is resolved once per connection')
    assert.equal(connects, ['127.0.0.2'])
  } finally {
    await Promise.all([sink.close(), allowed.close(), other.close()])
  }
})

Egress('a new connection resolves again and is refused when the answer changed to an address outside the allow-list', async () => {
  const allowed = await receiverOn('127.0.0.2')
  const other = await receiverOn('127.0.0.3', allowed.port)
  const lookup = scriptedLookup('127.0.0.2', '127.0.0.3')
  // keep-alive of 1 ms: the second forward needs a new connection, so it resolves again
  const sink = new ForwardSink({ allowPrivate: ['127.0.0.2/32'], lookup, keepAliveMs: 1 })
  try {
    assert.is((await sink.write([{ event: makeEvent(), tool: tool(`http://rebind.test:${allowed.port}/hook`) }])).size, 0)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const second = (await sink.write([{ event: makeEvent(), tool: tool(`http://rebind.test:${allowed.port}/hook`) }])).get(0)
    assert.equal([second?.kind, second?.code], ['permanent', 'FORWARD_URL_FORBIDDEN'])
    assert.match(second!.message, /127\.0\.0\.3/)
    assert.is(lookup.calls, 2)
    assert.equal([allowed.requests, other.requests], [1, 0])
    assert.equal(connects, ['127.0.0.2'])
  } finally {
    await Promise.all([sink.close(), allowed.close(), other.close()])
  }
})

// one address per IANA special-purpose block (and the ranges the old guard missed), with the name it is refused under
const SPECIAL: readonly [string, string][] = [
  ['0.1.2.3', 'this network'], ['10.1.2.3', 'private-use'], ['100.64.0.1', 'shared address space (CGNAT)'],
  ['100.127.255.254', 'shared address space (CGNAT)'], ['127.0.0.1', 'loopback'], ['169.254.169.254', 'link-local'],
  ['172.16.0.1', 'private-use'], ['192.0.0.8', 'IETF protocol assignments'], ['192.0.2.1', 'documentation (TEST-NET-1)'],
  ['192.88.99.1', 'deprecated 6to4 relay anycast'], ['192.168.1.1', 'private-use'], ['198.18.0.1', 'benchmarking'],
  ['198.19.255.255', 'benchmarking'], ['198.51.100.7', 'documentation (TEST-NET-2)'], ['203.0.113.9', 'documentation (TEST-NET-3)'],
  ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'], ['240.0.0.1', 'reserved'], ['255.255.255.255', 'limited broadcast'],
  ['::', 'unspecified'], ['::1', 'loopback'], ['::7f00:1', 'IPv4-compatible IPv6 (deprecated)'], ['::ffff:8.8.8.8', 'IPv4-mapped IPv6'],
  ['::ffff:127.0.0.1', 'IPv4-mapped IPv6'], ['64:ff9b::808:808', 'IPv4/IPv6 translation (NAT64)'],
  ['64:ff9b:1::1', 'local-use IPv4/IPv6 translation'], ['100::1', 'discard-only'], ['2001:0:4136:e378::1', 'Teredo'],
  ['2001:2::1', 'IETF protocol assignments'], ['2001:db8::1', 'documentation'], ['2002:c0a8:101::1', '6to4'], ['3fff::1', 'documentation'],
  ['5f00::1', 'segment routing (SRv6) SIDs'], ['fc00::1', 'unique-local'], ['fd12:3456::1', 'unique-local'], ['fe80::1', 'link-local'],
  ['fec0::1', 'site-local (deprecated)'], ['ff02::1', 'multicast'],
]
const PUBLIC = ['8.8.8.8', '1.1.1.1', '11.0.0.1', '100.128.0.1', '172.32.0.1', '198.20.0.1', '192.0.3.1', '2606:4700::1111', '2a00:1450::1']

Egress('every IANA special-purpose block is classified, and public unicast addresses are not', () => {
  const wrong = SPECIAL.filter(([address, name]) => classifyAddress(address)?.name !== name)
    .map(([address, name]) => `${address}: expected ${name}, got ${classifyAddress(address)?.name}`)
  assert.equal(wrong, [])
  assert.equal(PUBLIC.filter((address) => classifyAddress(address) !== undefined), [])
  const policy = createEgressPolicy({ allowPrivate: ['198.18.0.0/15', '64:ff9b::/96'] })
  assert.is(policy.verdict('198.19.1.1'), undefined)
  assert.is(policy.verdict('64:ff9b::808:808'), undefined)
  assert.equal(policy.verdict('198.51.100.7'), { address: '198.51.100.7', range: '198.51.100.0/24', name: 'documentation (TEST-NET-2)' })
})

Egress('a name resolving to any special-purpose address is refused before any socket opens', async () => {
  const sink = new ForwardSink({ allowPrivate: false, lookup: async (host) => {
    const address = host.replace(/\.special\.test$/, '').replace(/_/g, ':').replace(/-/g, '.')
    return [{ address, family: net.isIP(address) }]
  } })
  try {
    const items = SPECIAL.map(([address]) => ({ event: makeEvent(), tool: tool(`http://${address.replace(/\./g, '-').replace(/:/g, '_')}.special.test:8080/h`) }))
    const failures = await sink.write(items)
    const notRefused = SPECIAL.filter((_, i) => failures.get(i)?.code !== 'FORWARD_URL_FORBIDDEN' || failures.get(i)?.kind !== 'permanent').map(([a]) => a)
    assert.equal(notRefused, [])
    assert.match(failures.get(SPECIAL.findIndex(([a]) => a === '198.18.0.1'))!.message, /198\.18\.0\.1, in the benchmarking range 198\.18\.0\.0\/15/)
    assert.equal(connects, [], 'no socket was opened')
  } finally {
    await sink.close()
  }
})

Egress('an address literal in a special-purpose block is refused without a lookup and without a socket', async () => {
  let lookups = 0
  const sink = new ForwardSink({ allowPrivate: false, lookup: async () => { lookups++; return [{ address: '127.0.0.9', family: 4 }] } })
  try {
    const items = SPECIAL.map(([address]) => ({ event: makeEvent(), tool: tool(`http://${net.isIPv6(address) ? `[${address}]` : address}:8080/h`) }))
    const failures = await sink.write(items)
    assert.equal(SPECIAL.filter((_, i) => failures.get(i)?.code !== 'FORWARD_URL_FORBIDDEN').map(([a]) => a), [])
    assert.is(lookups, 0)
    assert.equal(connects, [])
  } finally {
    await sink.close()
  }
})

Egress('one special-purpose record among allowed ones refuses the destination', async () => {
  const sink = new ForwardSink({ allowPrivate: ['127.0.0.2/32'], lookup: async () => [{ address: '127.0.0.2', family: 4 }, { address: '198.18.0.5', family: 4 }] })
  try {
    const f = (await sink.write([{ event: makeEvent(), tool: tool('http://mixed.test:8080/h') }])).get(0)
    assert.is(f?.code, 'FORWARD_URL_FORBIDDEN')
    assert.equal(connects, [])
  } finally {
    await sink.close()
  }
})

Egress('an allowed CIDR works, and 100 forwards to it reuse one kept-alive connection', async () => {
  const receiver = await receiverOn('127.0.0.2')
  const lookup = scriptedLookup('127.0.0.2', '127.0.0.2')
  const sink = new ForwardSink({ allowPrivate: ['127.0.0.0/30'], lookup })
  try {
    for (let i = 0; i < 100; i++) {
      const failures = await sink.write([{ event: makeEvent(), tool: tool(`http://hooks.test:${receiver.port}/hook`) }])
      assert.is(failures.size, 0, `forward ${i + 1}: ${failures.get(0)?.message}`)
      // one event-loop turn between forwards, as between events in the pipeline: undici announces that the
      // first (freshly connected) connection is free again a microtask after the response ends
      await new Promise((resolve) => setImmediate(resolve))
    }
    assert.is(receiver.requests, 100)
    assert.is(receiver.connections, 1, `connections ${receiver.connections}, sockets opened ${connects.length}`)
    assert.is(lookup.calls, 1)
    assert.equal(connects, ['127.0.0.2'])
  } finally {
    await Promise.all([sink.close(), receiver.close()])
  }
})

Egress('an address that refuses the connection is followed by the next checked address of the same answer, never by another lookup', async () => {
  const receiver = await receiverOn('127.0.0.2')
  let lookups = 0
  const sink = new ForwardSink({ allowPrivate: ['127.0.0.0/29'], lookup: async () => {
    lookups++
    return [{ address: '127.0.0.4', family: 4 }, { address: '127.0.0.2', family: 4 }]
  } })
  try {
    const failures = await sink.write([{ event: makeEvent(), tool: tool(`http://two.test:${receiver.port}/hook`) }])
    assert.is(failures.size, 0, failures.get(0)?.message)
    assert.is(receiver.requests, 1)
    assert.is(lookups, 1)
    assert.equal(connects, ['127.0.0.4', '127.0.0.2'])
  } finally {
    await Promise.all([sink.close(), receiver.close()])
  }
})

Egress('a redirect is not followed: the 302 fails permanently and the target gets nothing', async () => {
  const target = await receiverOn('127.0.0.2')
  const server = createServer((req, res) => { req.resume(); res.writeHead(302, { location: `http://127.0.0.2:${target.port}/x` }).end() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const sink = new ForwardSink({ allowPrivate: ['127.0.0.0/8'] })
  try {
    const f = (await sink.write([{ event: makeEvent(), tool: tool(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/h`) }])).get(0)
    assert.equal([f?.kind, f?.code], ['permanent', 'DESTINATION_REDIRECT'])
    assert.is(target.requests, 0)
  } finally {
    server.closeAllConnections()
    await Promise.all([sink.close(), target.close(), new Promise((resolve) => server.close(resolve))])
  }
})

Egress.run()
