import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isPipelineError } from '../../src/core/errors.js'
import type { StreamEvent } from '../../src/core/event.js'
import { ForwardSink, type ForwardItem } from '../../src/sinks/forward.js'
import { signWebhook } from '../../src/sinks/sign-webhook.js'
import { freePort } from '../helpers/servers.js'

interface Received { readonly headers: IncomingMessage['headers']; readonly body: string; readonly url: string }
interface Receiver { readonly url: string; readonly received: Received[]; close(): Promise<void> }

const servers = new Set<Server>()

/** A real HTTP receiver on 127.0.0.1; `reply` answers each request (or never, to hang). */
async function receiver(reply: (req: Received, res: ServerResponse) => void): Promise<Receiver> {
  const received: Received[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), url: req.url ?? '' }
      received.push(r)
      reply(r, res)
    })
  })
  servers.add(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

function event(id: string): StreamEvent {
  return {
    id, event_type: 'webhook.github.push', repository: 'acme/app', tenant_id: 'acme', tool_id: 'gh-main',
    payload: { ref: 'refs/heads/main' }, timestamp: '2026-01-01T00:00:00.000Z', retry_count: 0,
  }
}

function item(id: string, url: string, secret = 'plain-secret'): ForwardItem {
  return { event: event(id), tool: { id: 'gh-main', secret, forwardUrl: url } }
}

/** What a receiver does, written from the Standard Webhooks spec rather than with signWebhook. */
function verify(secret: string, r: Received): boolean {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret)
  const expected = createHmac('sha256', key).update(`${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.${r.body}`).digest()
  const given = String(r.headers['webhook-signature']).split(' ').filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'))
  return given.some((g) => g.length === expected.length && timingSafeEqual(g, expected))
}

const Forward = suite('ForwardSink')
Forward.after(async () => {
  for (const s of servers) { s.closeAllConnections(); s.close() }
})

Forward('a 2xx delivery carries the event JSON and a signature the receiver verifies', async () => {
  const rx = await receiver((_r, res) => res.writeHead(204).end())
  const sink = new ForwardSink()
  const secret = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const failures = await sink.write([
    { ...item('evt-1', rx.url, secret), transformed: { branch: 'main' }, traceparent },
    item('evt-2', rx.url, 'plain-secret'),
  ])
  assert.is(failures.size, 0)
  assert.is(rx.received.length, 2)
  const [first, second] = [...rx.received].sort((a, b) => String(a.headers['webhook-id']).localeCompare(String(b.headers['webhook-id'])))
  assert.ok(verify(secret, first!))
  assert.ok(verify('plain-secret', second!))
  assert.not.ok(verify('other-secret', second!))
  assert.is(first!.headers['content-type'], 'application/json')
  assert.is(first!.headers.traceparent, traceparent)
  assert.is(second!.headers.traceparent, undefined)
  assert.ok(Math.abs(Number(first!.headers['webhook-timestamp']) - Date.now() / 1000) < 5)
  assert.equal(JSON.parse(first!.body), { ...event('evt-1'), transformed: { branch: 'main' } })
  assert.equal(JSON.parse(second!.body), event('evt-2'))
  assert.is(signWebhook(secret, 'evt-1', Number(first!.headers['webhook-timestamp']), first!.body), first!.headers['webhook-signature'])
  await sink.close()
  await rx.close()
})

Forward('an item\'s eventJson is the body byte for byte, signed as sent; with a transform result the event is serialized', async () => {
  const rx = await receiver((_r, res) => res.writeHead(200).end())
  const sink = new ForwardSink()
  const eventJson = JSON.stringify(event('evt-raw')).replace('"refs/heads/main"', '"refs/heads/caf\\u00e9"')
  const failures = await sink.write([
    { ...item('evt-raw', rx.url), eventJson },
    { ...item('evt-tx', rx.url), eventJson: '{"ignored":true}', transformed: { n: 1 } },
  ])
  assert.is(failures.size, 0)
  const bodies = new Map(rx.received.map((r) => [String(r.headers['webhook-id']), r]))
  assert.is(bodies.get('evt-raw')!.body, eventJson)
  assert.ok(verify('plain-secret', bodies.get('evt-raw')!))
  assert.equal(JSON.parse(bodies.get('evt-tx')!.body), { ...event('evt-tx'), transformed: { n: 1 } })
  assert.ok(verify('plain-secret', bodies.get('evt-tx')!))
  await sink.close()
  await rx.close()
})

Forward('signWebhook signs a body\'s text and its bytes alike, and again alike with the same secret', () => {
  const secret = `whsec_${Buffer.from('another-key-of-32-bytes-for-test').toString('base64')}`
  const body = '{"id":"evt-1","name":"café"}'
  const expected = `v1,${createHmac('sha256', Buffer.from('another-key-of-32-bytes-for-test')).update(`evt-1.1718000000.${body}`).digest('base64')}`
  assert.is(signWebhook(secret, 'evt-1', 1718000000, body), expected)
  assert.is(signWebhook(secret, 'evt-1', 1718000000, Buffer.from(body)), expected)
  assert.is(signWebhook(secret, 'evt-1', 1718000000, body), expected, 'the cached key signs the same')
  assert.is.not(signWebhook('plain-secret', 'evt-1', 1718000000, body), expected)
})

Forward('a 503 is transient, a 429 carries Retry-After, a 400 is permanent and a 3xx is not followed', async () => {
  const date = new Date(Date.now() + 120_000).toUTCString()
  const rx = await receiver((r, res) => {
    const [status, headers] = ({
      '/hook/503': [503, {}], '/hook/429': [429, { 'retry-after': '3' }], '/hook/429d': [429, { 'retry-after': date }],
      '/hook/400': [400, {}], '/hook/301': [301, { location: 'http://127.0.0.1:1/elsewhere' }], '/hook/408': [408, {}],
    } as Record<string, [number, Record<string, string>]>)[r.url.split('?')[0]!] ?? [200, {}]
    res.writeHead(status, headers).end('{"error":"receiver body"}')
  })
  const sink = new ForwardSink()
  const paths = ['503', '429', '429d', '400?token=sekrit', '301', '408', 'ok']
  const failures = await sink.write(paths.map((p, i) => item(`evt-${i}`, `${rx.url}/${p}`)))
  const outcome = [...failures].map(([i, e]) => [i, e.kind, e.code])
  assert.equal(outcome.sort(), [
    [0, 'transient', 'DESTINATION_5XX'], [1, 'transient', 'DESTINATION_429'], [2, 'transient', 'DESTINATION_429'],
    [3, 'permanent', 'DESTINATION_4XX'], [4, 'permanent', 'DESTINATION_REDIRECT'], [5, 'transient', 'DESTINATION_TIMEOUT'],
  ])
  assert.is(failures.get(1)!.retryAfterMs, 3000)
  const fromDate = failures.get(2)!.retryAfterMs!
  assert.ok(fromDate > 110_000 && fromDate <= 120_000, String(fromDate))
  const bad = failures.get(3)!.message
  assert.match(bad, /tool "gh-main"/)
  assert.match(bad, /HTTP 400/)
  assert.match(bad, `${rx.url}/400`)
  assert.not.match(bad, /sekrit/)
  assert.not.match(bad, /receiver body/)
  assert.is(rx.received.length, paths.length)
  await sink.close()
  await rx.close()
})

Forward('a token in the destination path is masked in the failure message, which still names the host and route', async () => {
  const rx = await receiver((_r, res) => res.writeHead(404).end())
  const origin = new URL(rx.url).origin
  const port = await freePort()
  const sink = new ForwardSink({ timeoutMs: 2000 })
  const failures = await sink.write([
    item('evt-slack', `${origin}/services/T0A1B2C3D/B0E4F5G6H/xoxbPathTokenDoNotLeak`),
    item('evt-discord', `http://127.0.0.1:${port}/api/webhooks/1234567890123456789/DiscordPathTokenDoNotLeak`),
  ])
  assert.equal([...failures.values()].map((f) => f.code).sort(), ['DESTINATION_4XX', 'DESTINATION_UNREACHABLE'])
  assert.match(failures.get(0)!.message, `HTTP 404 from ${origin}/services/T0A1B2C3D/****/****;`)
  assert.match(failures.get(1)!.message, `could not reach http://127.0.0.1:${port}/api/webhooks/****/****`)
  for (const f of failures.values()) assert.not.match(f.message, /PathTokenDoNotLeak|B0E4F5G6H|1234567890123456789/)
  assert.is(rx.received[0]?.url, '/services/T0A1B2C3D/B0E4F5G6H/xoxbPathTokenDoNotLeak', 'the request went to the whole URL')
  await sink.close()
  await rx.close()
})

Forward('a hanging receiver fails with DESTINATION_TIMEOUT after timeoutMs', async () => {
  const rx = await receiver(() => {})
  const sink = new ForwardSink({ timeoutMs: 300 })
  const started = Date.now()
  const failures = await sink.write([item('evt-1', rx.url)])
  const tookMs = Date.now() - started
  assert.is(failures.get(0)?.code, 'DESTINATION_TIMEOUT')
  assert.is(failures.get(0)?.kind, 'transient')
  assert.match(failures.get(0)!.message, /within 300 ms/)
  assert.ok(tookMs >= 250 && tookMs < 2000, `took ${tookMs} ms`)
  await sink.close()
  await rx.close()
})

Forward('a refused connection is transient DESTINATION_UNREACHABLE', async () => {
  const port = await freePort()
  const sink = new ForwardSink()
  const failures = await sink.write([item('evt-1', `http://127.0.0.1:${port}/hook`)])
  assert.is(failures.get(0)?.code, 'DESTINATION_UNREACHABLE')
  assert.is(failures.get(0)?.kind, 'transient')
  assert.match(failures.get(0)!.message, /ECONNREFUSED/)
  assert.equal((await sink.write([{ event: event('evt-2'), tool: { id: 'gh-main', secret: 's' } }])).get(0)?.code, 'FORWARD_URL_MISSING')
})

Forward('a hanging destination does not take the slots of another one', async () => {
  const slow = await receiver(() => {})
  const fast = await receiver((_r, res) => res.writeHead(200).end())
  const sink = new ForwardSink({ timeoutMs: 1500, perDestinationConcurrency: 2 })
  const slowDone = sink.write([1, 2, 3, 4, 5].map((i) => item(`slow-${i}`, slow.url)))
  await new Promise((resolve) => setTimeout(resolve, 100))
  const started = Date.now()
  const fastFailures = await sink.write([1, 2, 3, 4, 5].map((i) => item(`fast-${i}`, fast.url)))
  const fastMs = Date.now() - started
  assert.is(fastFailures.size, 0)
  assert.is(fast.received.length, 5)
  assert.ok(fastMs < 1000, `the fast destination waited ${fastMs} ms`)
  // the slow destination holds all but one of its origin's 2 slots; its other 4 items wait instead of taking the fast one's
  assert.is(slow.received.length, 1)
  const slowFailures = await slowDone
  assert.is(slowFailures.size, 5)
  // the one sent times out; the 4 waiting give up after slotWaitMs without any request finishing (a stall) and
  // carry Retry-After so retryBackoff parks them instead of holding the pipeline
  const codes = [...slowFailures.values()].map((e) => e.code).sort()
  assert.equal(codes, ['DESTINATION_BUSY', 'DESTINATION_BUSY', 'DESTINATION_BUSY', 'DESTINATION_BUSY', 'DESTINATION_TIMEOUT'])
  assert.ok([...slowFailures.values()].filter((e) => e.code === 'DESTINATION_BUSY').every((e) => e.kind === 'transient' && !e.deferred && e.retryAfterMs === 1500))
  await sink.close()
  await slow.close()
  await fast.close()
})

Forward('a busy destination that keeps answering is waited for by its share of waiters, not given up on', async () => {
  const busy = await receiver((_r, res) => setTimeout(() => res.writeHead(200).end(), 600))
  // 2 slots, of which one destination alone may hold 1, and 2 waiters of its own wait as long as it answers: the
  // third request waits ~1.2 s, past slotWaitMs, while the destination finishes one every 600 ms (400 ms of slack)
  const sink = new ForwardSink({ perDestinationConcurrency: 2, slotWaitMs: 1000 })
  const failures = await sink.write(Array.from({ length: 3 }, (_, i) => item(`busy-${i}`, busy.url)))
  assert.is(failures.size, 0)
  assert.is(busy.received.length, 3)
  await sink.close()
  await busy.close()
})

Forward('a busy destination\'s waiters beyond its share are parked without spending a retry, not held', async () => {
  const busy = await receiver((_r, res) => setTimeout(() => res.writeHead(200).end(), 150))
  const sink = new ForwardSink({ perDestinationConcurrency: 1, slotWaitMs: 1000 })
  // 12 requests through 1 slot take ~1.8 s; the destination finishes one every 150 ms, so none is a stall, but only
  // 1 waiter (perDestinationConcurrency) is its share: the others go after slotWaitMs, deferred, so retryBackoff
  // parks them without spending a retry and their pipeline slots go to other destinations
  const failures = await sink.write(Array.from({ length: 12 }, (_, i) => item(`busy-${i}`, busy.url)))
  assert.ok(failures.size > 0 && failures.size <= 10, `${failures.size} of 12 parked`)
  for (const failure of failures.values()) {
    assert.equal([failure.code, failure.kind, failure.deferred], ['DESTINATION_BUSY', 'transient', true])
    assert.ok((failure.retryAfterMs ?? 0) >= 1000, `parked for as long as its waiters wait at least; ${failure.retryAfterMs} ms`)
  }
  assert.is(busy.received.length, 12 - failures.size, 'a parked request was not sent')
  await sink.close()
  await busy.close()
})

Forward('close() cuts off requests in flight as SINK_CLOSED and is idempotent', async () => {
  const rx = await receiver(() => {})
  const sink = new ForwardSink({ timeoutMs: 5000 })
  const pending = sink.write([item('evt-1', rx.url), item('evt-2', rx.url)])
  await new Promise((resolve) => setTimeout(resolve, 100))
  const first = sink.close()
  assert.is(sink.close(), first)
  await first
  const failures = await pending
  assert.equal([...failures.values()].map((e) => e.code), ['SINK_CLOSED', 'SINK_CLOSED'])
  try {
    await sink.write([item('evt-3', rx.url)])
    assert.unreachable('wrote after close')
  } catch (err) {
    assert.not.ok(isPipelineError(err))
    assert.match((err as Error).message, /after close/)
  }
  await rx.close()
})

Forward('rejects bad options naming the option', () => {
  assert.throws(() => new ForwardSink({ timeoutMs: 0 }), /"timeoutMs" must be a positive integer/)
  assert.throws(() => new ForwardSink({ perDestinationConcurrency: 1.5 }), /"perDestinationConcurrency" must be an integer/)
})

Forward.run()
