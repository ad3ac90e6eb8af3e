import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { CircuitBreakers } from '../../src/sinks/circuit-breaker.js'
import { DestinationRateLimiter } from '../../src/sinks/destination-rate-limit.js'
import { ForwardSink, type ForwardItem } from '../../src/sinks/forward.js'
import { lastValueFrom, of, toArray } from 'rxjs'
import { parseTool } from '../../src/core/tool.js'
import { forwardStep } from '../../src/operators/forward.js'
import { retryBackoff } from '../../src/operators/retry-backoff.js'
import { asOneBatch, envelope } from '../operators/helpers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { startReceiver, type Receiver } from '../helpers/pipeline.js'
import { sharedRedis } from '../helpers/servers.js'

interface Ctx { closers: (() => unknown)[] }
const Guards = suite<Ctx>('forward sink: attempts, breaker, rate limit', { closers: [] })
Guards.after.each(async (ctx) => { for (const close of ctx.closers.splice(0).reverse()) await close() })

async function receiver(ctx: Ctx, respond: Parameters<typeof startReceiver>[0]): Promise<Receiver> {
  const r = await startReceiver(respond)
  ctx.closers.push(() => r.close())
  return r
}
function sink(ctx: Ctx, options: ConstructorParameters<typeof ForwardSink>[0] = {}): ForwardSink {
  const s = new ForwardSink({ timeoutMs: 2000, ...options })
  ctx.closers.push(() => s.close())
  return s
}
const item = (url: string, extra: Partial<ForwardItem> = {}): ForwardItem =>
  ({ event: makeEvent({ tool_id: 'gh' }), tool: { id: 'gh', secret: '', forwardUrl: url }, ...extra })

Guards('deliver reports the status, the duration and the first 1 KiB of the response body', async (ctx) => {
  const r = await receiver(ctx, () => ({ status: 502, body: `upstream down ${'x'.repeat(5000)}` }))
  const attempt = await sink(ctx).deliver(item(r.url))
  assert.equal([attempt.failure?.code, attempt.sent, attempt.status, attempt.destination], ['DESTINATION_5XX', true, 502, 'gh'])
  assert.is(attempt.responseBody?.length, 1024)
  assert.ok(attempt.responseBody?.startsWith('upstream down xxx'))
  assert.ok(attempt.durationMs >= 0 && attempt.durationMs < 2000 && Math.abs(attempt.startedAt - Date.now()) < 5000)
  const ok = await sink(ctx).deliver(item(r.url, { destinationId: 'billing' }))
  assert.is(ok.destination, 'billing', 'the destination id keys the attempt when the item has one')
})

// a raw loopback server for answers the receiver helper cannot give (a huge body, headers then silence)
async function rawServer(ctx: Ctx, handle: Parameters<typeof createServer>[1]): Promise<{ url: string; connections: () => number }> {
  let connections = 0
  const server: Server = createServer(handle)
  server.on('connection', () => { connections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ctx.closers.push(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, connections: () => connections }
}

Guards('a response body over 64 KiB is not read to its end: its head is kept, the connection closed, the next forward goes', async (ctx) => {
  let served = 0
  const huge = Buffer.alloc(4 * 1024 * 1024, 'y')
  const r = await rawServer(ctx, (req, res) => {
    req.resume()
    req.on('end', () => {
      served++
      if (served === 1) { res.writeHead(200, { 'content-length': String(huge.length) }); res.write(huge.subarray(0, 256 * 1024)); return } // the rest never comes
      res.end('ok')
    })
  })
  const s = sink(ctx, { timeoutMs: 30_000 })
  const started = Date.now()
  const first = await s.deliver(item(r.url))
  assert.equal([first.failure?.code, first.status, first.responseBody?.length], [undefined, 200, 1024], 'the status decides; the head is kept')
  assert.ok(Date.now() - started < 10_000, 'it did not wait for the rest of the body or the time limit')
  const second = await s.deliver(item(r.url))
  assert.equal([second.failure?.code, second.responseBody], [undefined, 'ok'])
  assert.is(r.connections(), 2, 'the cut connection was not reused')
})

Guards('a destination that sends its status and then stalls is judged by its status when the time limit cuts the body', async (ctx) => {
  const r = await rawServer(ctx, (req, res) => {
    req.resume()
    req.on('end', () => { res.writeHead(503, { 'retry-after': '7' }); res.write('overloaded') })
  })
  const attempt = await sink(ctx, { timeoutMs: 300 }).deliver(item(r.url))
  assert.equal([attempt.failure?.code, attempt.failure?.retryAfterMs, attempt.status, attempt.responseBody], ['DESTINATION_5XX', 7000, 503, 'overloaded'])
})

Guards('five 503s open the destination\'s breaker: the sixth delivery is a deferred DESTINATION_CIRCUIT_OPEN and sends nothing', async (ctx) => {
  const r = await receiver(ctx, () => 503)
  const s = sink(ctx, { breakers: new CircuitBreakers({ coolDownMs: 60_000 }) })
  for (let i = 0; i < 5; i++) assert.is((await s.deliver(item(r.url))).failure?.code, 'DESTINATION_5XX')
  const held = await s.deliver(item(r.url))
  assert.equal([held.failure?.code, held.failure?.kind, held.failure?.deferred, held.sent], ['DESTINATION_CIRCUIT_OPEN', 'transient', true, false])
  assert.ok(held.failure!.retryAfterMs! > 59_000 && held.failure!.retryAfterMs! < 120_000, 'until the probe, spread over one more cool-down')
  assert.is(r.requests.length, 5, 'the open breaker sent nothing')
  assert.is((await s.deliver(item(r.url, { destinationId: 'other' }))).failure?.code, 'DESTINATION_5XX', 'another destination still goes')
})

Guards('4xx answers do not open the breaker: the receiver is alive and refuses the request', async (ctx) => {
  const r = await receiver(ctx, () => 400)
  const s = sink(ctx, { breakers: new CircuitBreakers() })
  for (let i = 0; i < 8; i++) assert.is((await s.deliver(item(r.url))).failure?.code, 'DESTINATION_4XX')
  assert.is(r.requests.length, 8)
})

Guards('a 429 with Retry-After empties the shared bucket: the next delivery waits, deferred, without a request', async (ctx) => {
  const redis = new Redis((await sharedRedis()).url)
  ctx.closers.push(() => redis.disconnect())
  const r = await receiver(ctx, (n) => (n === 1 ? { status: 429, headers: { 'retry-after': '2' } } : 200))
  const s = sink(ctx, { rateLimiter: new DestinationRateLimiter({ redis, prefix: `t-${randomUUID()}:` }) })
  const limit = { perSecond: 100, burst: 100 }
  const first = await s.deliver(item(r.url, { rateLimit: limit }))
  assert.equal([first.failure?.code, first.failure?.retryAfterMs], ['DESTINATION_429', 2000])
  const second = await s.deliver(item(r.url, { rateLimit: limit }))
  assert.equal([second.failure?.code, second.failure?.deferred, second.sent], ['DESTINATION_RATE_LIMITED', true, false])
  assert.ok(second.failure!.retryAfterMs! >= 1500, `waits out the Retry-After; got ${second.failure!.retryAfterMs}`)
  assert.is(r.requests.length, 1)
  const unlimited = await s.deliver(item(r.url))
  assert.is(unlimited.failure, undefined, 'an item without a rate limit is not held')
})

Guards('maxConcurrency bounds the requests in flight to one destination while another on the same origin is not held', async (ctx) => {
  let open = 0
  let most = 0
  const r = await receiver(ctx, async () => {
    most = Math.max(most, ++open)
    await new Promise((resolve) => setTimeout(resolve, 50))
    open--
    return 200
  })
  const s = sink(ctx, { perDestinationConcurrency: 10 })
  const limited = Array.from({ length: 8 }, () => s.deliver(item(r.url, { destinationId: 'slow-lane', maxConcurrency: 2 })))
  const results = await Promise.all(limited)
  assert.equal(results.map((a) => a.failure?.code), Array(8).fill(undefined), 'a destination that keeps answering is waited for')
  assert.is(most, 2, 'at most 2 of its requests were open at once')
  most = 0
  await Promise.all([...Array.from({ length: 4 }, () => s.deliver(item(r.url, { destinationId: 'slow-lane', maxConcurrency: 1 }))),
    ...Array.from({ length: 4 }, () => s.deliver(item(r.url, { destinationId: 'fast-lane' })))])
  assert.ok(most >= 4, `the unlimited destination on the same origin ran in parallel; at most ${most} open`)
})

Guards('destinations sharing an origin: a slow one holds all but one of its slots, and a freed slot goes to the one holding fewer', async (ctx) => {
  let answerSlow!: () => void
  const slowHeld = new Promise<void>((resolve) => { answerSlow = resolve })
  let slowOpen = 0
  let slowMost = 0
  const r = await receiver(ctx, async (_n, body) => {
    if (!body.includes('"tool_id":"slow"')) return 200
    slowMost = Math.max(slowMost, ++slowOpen)
    await slowHeld
    slowOpen--
    return 200
  })
  const s = sink(ctx, { perDestinationConcurrency: 4, slotWaitMs: 60_000 })
  const slow = Array.from({ length: 7 }, () => s.deliver(toolsDestination('slow', `${r.url}?to=slow`)))
  await eventually('the slow destination holds its share of the slots', () => slowOpen === 3)
  // the fourth slot is free for another destination: its deliveries go one after the other, without waiting for slow's
  const started = Date.now()
  const quick = await Promise.all(Array.from({ length: 5 }, () => s.deliver(toolsDestination('quick', `${r.url}?to=quick`))))
  assert.equal(quick.map((a) => a.failure?.code), Array(5).fill(undefined))
  assert.ok(Date.now() - started < 5000, `the quick destination waited ${Date.now() - started} ms`)
  assert.is(slowMost, 3, 'at most 3 of the 4 slots held by the slow destination')
  answerSlow()
  assert.equal((await Promise.all(slow)).map((a) => a.failure?.code), Array(7).fill(undefined), 'its waiters (4, its share) are waited for')
})

// destination ids are unique within a tool only: "ci" of one tenant's tool and "ci" of another's are two destinations
const toolsDestination = (toolId: string, url: string, extra: Partial<ForwardItem> = {}): ForwardItem =>
  ({ event: makeEvent({ tool_id: toolId }), tool: { id: toolId, secret: '', forwardUrl: url }, destinationId: 'ci', ...extra })

Guards('two tools\' destinations of the same id have their own breakers: one tenant\'s dead destination never parks the other\'s deliveries', async (ctx) => {
  const dead = await receiver(ctx, () => 503)
  const alive = await receiver(ctx, () => 200)
  const opened: string[] = []
  const s = sink(ctx, { breakers: new CircuitBreakers({ failureThreshold: 2, coolDownMs: 60_000, onStateChange: (d, state) => { if (state === 'open') opened.push(d) } }) })
  for (let i = 0; i < 2; i++) assert.is((await s.deliver(toolsDestination('tenant-a', dead.url))).failure?.code, 'DESTINATION_5XX')
  assert.is((await s.deliver(toolsDestination('tenant-a', dead.url))).failure?.code, 'DESTINATION_CIRCUIT_OPEN', 'tenant A\'s breaker opened')
  const b = await s.deliver(toolsDestination('tenant-b', alive.url))
  assert.equal([b.failure?.code, b.sent, b.destination], [undefined, true, 'ci'], 'tenant B\'s "ci" is delivered, not parked behind A\'s breaker')
  assert.is(alive.requests.length, 1)
  assert.is(opened.length, 1)
})

Guards('two tools\' destinations of the same id have their own rate-limit buckets: one tenant\'s 429 never holds the other\'s deliveries', async (ctx) => {
  const redis = new Redis((await sharedRedis()).url)
  ctx.closers.push(() => redis.disconnect())
  const throttled = await receiver(ctx, () => ({ status: 429, headers: { 'retry-after': '30' } }))
  const alive = await receiver(ctx, () => 200)
  const s = sink(ctx, { rateLimiter: new DestinationRateLimiter({ redis, prefix: `t-${randomUUID()}:` }) })
  const rateLimit = { perSecond: 100, burst: 100 }
  assert.is((await s.deliver(toolsDestination('tenant-a', throttled.url, { rateLimit }))).failure?.code, 'DESTINATION_429')
  const b = await s.deliver(toolsDestination('tenant-b', alive.url, { rateLimit }))
  assert.equal([b.failure?.code, b.sent], [undefined, true], 'tenant B\'s "ci" goes: A\'s Retry-After emptied only A\'s bucket')
  assert.is(alive.requests.length, 1)
})

Guards('a header value HTTP cannot carry fails the delivery permanently, sends nothing and does not trip the breaker', async (ctx) => {
  const r = await receiver(ctx, () => 200)
  const breakers = new CircuitBreakers({ failureThreshold: 1 })
  const s = sink(ctx, { breakers })
  const bad: ForwardItem = { event: makeEvent({ tool_id: 'gh' }), tool: { id: 'gh', secret: '', forwardUrl: r.url, forwardHeaders: { 'x-team': 'kettle \u2615' } } }
  const attempt = await s.deliver(bad)
  assert.equal([attempt.failure?.code, attempt.failure?.kind, attempt.sent], ['FORWARD_REQUEST_INVALID', 'permanent', false])
  assert.match(attempt.failure?.message ?? '', /x-team/)
  assert.ok(!attempt.failure?.message.includes('kettle'), `the header value is not in the message: ${attempt.failure?.message}`)
  assert.equal(breakers.list(), [], 'the destination did not fail: nothing was sent to it')
  assert.is(r.requests.length, 0)
  assert.is((await s.deliver(item(r.url))).failure, undefined, 'the next delivery goes')
})

Guards('a forward still waiting for a slot when its attempt runs out of time is given up, not sent after the attempt failed', async (ctx) => {
  let answerFirst!: () => void
  const firstHeld = new Promise<void>((resolve) => { answerFirst = resolve })
  const r = await receiver(ctx, async (n) => { if (n === 1) await firstHeld; return 200 })
  // one slot, and a long slot wait: a destination that answers, slowly, is waited for
  const s = sink(ctx, { perDestinationConcurrency: 1, slotWaitMs: 60_000 })
  const tool = parseTool({ id: 'gh', provider: 'github', secret: 'k', processing_mode: 'store_and_forward', forward_url: r.url,
    retry_policy: { max_retries: 0, initial_interval: '10ms', max_interval: '10ms', multiplier: 1, max_elapsed_time: '1m' } })
  const event = (tool_id: string) => ({ ...envelope({ tool_id }), tool })
  const first = s.deliver(item(r.url))
  const waiting = event('gh')
  const [timedOut] = await lastValueFrom(of(waiting).pipe(asOneBatch(retryBackoff({ step: forwardStep({ sink: s }), timeoutMs: 200 })), toArray()))
  assert.is(timedOut?.failure?.code, 'PROCESSING_TIMEOUT', 'the attempt ran out of time while it waited for the slot')
  answerFirst()
  assert.is((await first).failure, undefined)
  const last = event('gh')
  assert.is((await s.deliver({ event: last.message.event, tool })).failure, undefined)
  const ids = r.requests.map((q) => String(q.headers['webhook-id']))
  assert.not.ok(ids.includes(waiting.message.event.id), `the timed-out forward was sent anyway, after its failure was decided (requests: ${ids.length})`)
  assert.is(ids.length, 2)
})

Guards.run()
