import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createSsrfGuard, parseAllowPrivate } from '../../src/sinks/ssrf-guard.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { makeEvent } from '../helpers/events.js'
import { startReceiver } from '../helpers/pipeline.js'

const Guard = suite('SSRF guard of forward destinations')

const REFUSED = ['http://127.0.0.1/h', 'http://127.9.9.9:8080/h', 'http://[::1]/h', 'http://169.254.169.254/latest/meta-data',
  'http://[fe80::1]/h', 'http://10.1.2.3/h', 'http://172.16.0.1/h', 'http://172.31.255.255/h', 'http://192.168.1.1/h',
  'http://[fc00::1]/h', 'http://[fd12:3456::1]/h', 'http://0.0.0.0/h', 'http://[::]/h', 'http://[::ffff:127.0.0.1]/h',
  'http://[::ffff:a00:1]/h', 'http://2130706433/h', 'http://0x7f.1/h', 'https://localhost/h', 'http://[2001:db8::1]/h',
  'http://198.18.0.1/h', 'http://[64:ff9b::a00:1]/h', 'http://[2002:7f00:1::1]/h', 'http://[2001:0:4136:e378::1]/h', 'http://[::7f00:1]/h',
  'http://224.0.0.1/h', 'http://255.255.255.255/h',
  // carrier-grade NAT (100.64/10), listed in the README's FORWARD_ALLOW_PRIVATE row
  'http://100.64.0.1/h', 'http://100.127.255.255/h']
const ALLOWED = ['http://8.8.8.8/h', 'http://172.32.0.1/h', 'http://172.15.255.255/h', 'http://192.169.0.1/h',
  'https://[2606:4700::1]/h', 'http://11.0.0.1/h', 'http://[2a00:1450::1]/h', 'http://100.63.255.255/h', 'http://100.128.0.1/h']

Guard('refuses every loopback, link-local, private and unspecified form, including encoded ones', async () => {
  const guard = createSsrfGuard()
  const let_through = []
  for (const u of REFUSED) if (!(await guard(new URL(u)))) let_through.push(u)
  assert.equal(let_through, [])
  const verdict = await guard(new URL('http://169.254.169.254/latest/meta-data?token=abc'))
  assert.equal(verdict, { address: '169.254.169.254', range: '169.254.0.0/16', name: 'link-local' })
})

Guard('lets public addresses through (IP literals: no DNS, no traffic)', async () => {
  const guard = createSsrfGuard()
  const refused = []
  for (const u of ALLOWED) if (await guard(new URL(u))) refused.push(u)
  assert.equal(refused, [])
})

Guard('checks every resolved address: one private record among public ones is refused', async () => {
  const lookups: string[] = []
  const guard = createSsrfGuard({
    lookup: async (host) => { lookups.push(host); return [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.7', family: 4 }] },
  })
  assert.equal(await guard(new URL('https://hooks.example.test/x')), { address: '10.0.0.7', range: '10.0.0.0/8', name: 'private-use' })
  // resolved again on every check: DNS can change between forwards
  await guard(new URL('https://hooks.example.test/x'))
  assert.equal(lookups, ['hooks.example.test', 'hooks.example.test'])
})

Guard('an allow-list lets exactly the listed ranges through', async () => {
  const guard = createSsrfGuard({ allowPrivate: ['127.0.0.1/32', '::1', '10.20.0.0/16'] })
  assert.is(await guard(new URL('http://127.0.0.1:9/h')), undefined)
  assert.is(await guard(new URL('http://localhost:9/h')), undefined)
  assert.is(await guard(new URL('http://[::1]:9/h')), undefined)
  assert.is(await guard(new URL('http://10.20.3.4/h')), undefined)
  assert.ok(await guard(new URL('http://127.0.0.2/h')))
  assert.ok(await guard(new URL('http://10.21.0.1/h')))
  assert.ok(await guard(new URL('http://192.168.0.1/h')))
})

Guard('resolution failures reject (the sink retries them as unreachable)', async () => {
  const guard = createSsrfGuard({ lookup: async () => { throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }) } })
  try {
    await guard(new URL('https://gone.example.test/'))
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /ENOTFOUND/)
  }
})

Guard('parseAllowPrivate reads true, false and CIDR lists, and names a bad entry', () => {
  assert.is(parseAllowPrivate('true'), true)
  assert.is(parseAllowPrivate('FALSE'), false)
  assert.equal(parseAllowPrivate('127.0.0.1/32, ::1'), ['127.0.0.1/32', '::1'])
  try {
    parseAllowPrivate('10.0.0.0/8,10.0.0.0/33')
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /FORWARD_ALLOW_PRIVATE: "10\.0\.0\.0\/33" is not an address or CIDR/)
  }
  try {
    new ForwardSink({ allowPrivate: ['nope'] })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /allowPrivate: "nope"/)
  }
})

Guard('ForwardSink with allowPrivate false refuses a loopback receiver permanently, naming the tool, not the query', async () => {
  const receiver = await startReceiver()
  const sink = new ForwardSink({ allowPrivate: false })
  const open = new ForwardSink() // library default: permissive, so existing loopback tests keep working
  const allowed = new ForwardSink({ allowPrivate: ['127.0.0.0/8'] })
  try {
    const event = makeEvent()
    const url = `${receiver.url}?token=very-secret`
    const failures = await sink.write([{ event, tool: { id: 'gh-main', secret: 's', forwardUrl: url } },
      { event, tool: { id: 'gh-main', secret: 's', forwardUrl: receiver.url.replace('127.0.0.1', 'localhost') } }])
    assert.is(failures.size, 2)
    const f = failures.get(0)!
    assert.equal([f.kind, f.code], ['permanent', 'FORWARD_URL_FORBIDDEN'])
    assert.match(f.message, /tool "gh-main"/)
    assert.match(f.message, /127\.0\.0\.0\/8/)
    assert.not.match(f.message, /very-secret/)
    assert.is(failures.get(1)!.code, 'FORWARD_URL_FORBIDDEN')
    assert.is(receiver.requests.length, 0)
    assert.is((await open.write([{ event, tool: { id: 'gh-main', secret: 's', forwardUrl: url } }])).size, 0)
    assert.is((await allowed.write([{ event, tool: { id: 'gh-main', secret: 's', forwardUrl: url } }])).size, 0)
    assert.is(receiver.requests.length, 2)
  } finally {
    await Promise.all([sink.close(), open.close(), allowed.close(), receiver.close()])
  }
})

Guard.run()
