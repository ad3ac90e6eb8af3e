import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { DeliveryLog } from '../../src/db/delivery-log.js'
import { eventHistory } from '../../src/db/event-history.js'
import { CircuitBreakers, type BreakerState } from '../../src/sinks/circuit-breaker.js'
import { DestinationRateLimiter } from '../../src/sinks/destination-rate-limit.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { startDelayedRetries } from '../../src/sources/delayed-retries.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, startReceiver, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; closers: (() => Promise<unknown> | unknown)[] }
const Deliveries = suite<Ctx>('webhook pipeline: delivery attempts, breakers, rate limits', {} as Ctx)

Deliveries.before.each(async (ctx) => {
  const pg = await sharedPostgres()
  ctx.w = await pipelineWorld((await sharedRedis()).url, await pg.createDatabase())
  ctx.closers = []
})
Deliveries.after.each((ctx) => release(ctx, {
  closers: async (closers) => { for (const close of closers.reverse()) await close() },
  w: (w) => w.close(),
}))

const fast = { initial_interval: '10ms', max_interval: '40ms', multiplier: 2, max_retries: 5, max_elapsed_time: '1m' }

Deliveries('a flaky receiver (500, 500, 200) leaves three attempt rows with statuses, durations and next attempt times', async ({ w, closers }) => {
  const receiver = await startReceiver((n) => (n <= 2 ? { status: 500, body: `boom ${n}` } : { status: 200, body: 'taken' }))
  closers.push(() => receiver.close())
  const log = new DeliveryLog({ db: w.db.db, flushMs: 20 })
  closers.push(() => log.close())
  w.addTool({ id: 'flaky', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url, retry_policy: fast })
  const [event] = await w.enqueue(1, { tool_id: 'flaky' })
  w.start({ deliveryLog: log })
  await eventually('forwarded', () => w.settled.some((e) => e.outcome === 'forwarded'))
  await log.flush()
  const rows = await w.db.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', event!.id).orderBy('attempt').execute()
  assert.equal(rows.map((r) => [r.tool_id, r.destination_id, r.attempt, r.http_status, r.error_class, r.error_code, r.response_body]), [
    ['flaky', 'flaky', 1, 500, 'transient', 'DESTINATION_5XX', 'boom 1'],
    ['flaky', 'flaky', 2, 500, 'transient', 'DESTINATION_5XX', 'boom 2'],
    ['flaky', 'flaky', 3, 200, null, null, 'taken'],
  ])
  assert.ok(rows.every((r) => Number.isInteger(r.duration_ms) && r.duration_ms >= 0 && r.duration_ms < 2000), 'durations in ms')
  assert.ok(rows[0]!.next_attempt_at && rows[1]!.next_attempt_at && rows[2]!.next_attempt_at === null, 'a next attempt time on the failures only')
  assert.ok(new Date(rows[0]!.next_attempt_at!).getTime() >= new Date(rows[0]!.started_at).getTime(), 'the next attempt is due after the first')
  const history = await eventHistory(w.db.db, 'flaky', event!.id)
  assert.equal(history?.attempts.map((d) => [d.destination_id, d.attempts.map((a) => a.http_status)]), [['flaky', [500, 500, 200]]])
})

Deliveries('a dead destination\'s breaker opens, parks the backlog without spending retries, probes, closes when the receiver is back, and the backlog arrives once', async ({ w, closers }) => {
  let alive = false
  const receiver = await startReceiver(() => (alive ? 200 : 503))
  closers.push(() => receiver.close())
  const states: BreakerState[] = []
  const breakers = new CircuitBreakers({ failureThreshold: 3, coolDownMs: 200, maxCoolDownMs: 400, onStateChange: (_d, state) => states.push(state) })
  const sink = new ForwardSink({ timeoutMs: 2000, breakers })
  closers.push(() => sink.close())
  const delayed = startDelayedRetries({ redis: w.redis, keys: w.keys, intervalMs: 20 })
  closers.push(() => delayed.close())
  w.addTool({ id: 'dead', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url, retry_policy: fast })
  const events = await w.enqueue(30, { tool_id: 'dead' })
  w.start({ forwardSink: sink, maxInlineRetryDelayMs: 100 })
  // dead for well over the retry budget: 5 retries of 10–40 ms would dead-letter every event within ~0.2 s
  await eventually('the breaker opened, and a probe failed', () => states.filter((s) => s === 'half_open').length >= 2, 15_000)
  const failedWhileDead = receiver.requests.length
  alive = true
  await eventually('every event forwarded', () => new Set(w.settled.filter((e) => e.outcome === 'forwarded').map((e) => e.message.event.id)).size === 30, 30_000)
  assert.is(states.at(-1), 'closed')
  assert.ok(states.includes('open') && states.includes('half_open'), states.join(','))
  const delivered = receiver.requests.slice(failedWhileDead).map((r) => JSON.parse(r.body).id as string)
  assert.is(delivered.length, 30, 'each event delivered once after the destination came back')
  assert.equal(new Set(delivered), new Set(events.map((e) => e.id)))
  assert.ok(failedWhileDead < 30 + 10, `the open breaker kept the dead destination from being hammered (${failedWhileDead} requests while dead)`)
  assert.is(await w.rowCount('webhook_dlq'), 0, 'nothing dead-lettered')
  assert.ok(w.settled.some((e) => e.outcome === 'parked'), 'the backlog was parked while the breaker was open')
})

Deliveries('a destination limited to 50/s across two worker pipelines receives at most 50/s plus the burst, and nothing is dead-lettered', async ({ w, closers }) => {
  const receiver = await startReceiver(() => 200)
  closers.push(() => receiver.close())
  const limit = { perSecond: 50, burst: 10 }
  w.addTool({ id: 'limited', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url,
    retry_policy: { ...fast, max_retries: 1 } })
  const events = await w.enqueue(200, { tool_id: 'limited' })
  const url = (await sharedRedis()).url
  // two workers: each its own Redis connection, limiter and sink, one consumer group
  for (const consumer of ['worker-a', 'worker-b']) {
    const redis = new Redis(url, { maxRetriesPerRequest: null })
    closers.push(() => redis.disconnect())
    const sink = new ForwardSink({ timeoutMs: 2000, rateLimiter: new DestinationRateLimiter({ redis, prefix: `${w.keys.stream}:rl:` }), rateLimitOf: () => limit })
    closers.push(() => sink.close())
    w.start({ forwardSink: sink, consumer })
  }
  const lag = monitorEventLoopDelay({ resolution: 10 })
  lag.enable()
  await eventually('all 200 forwarded', () => w.settled.filter((e) => e.outcome === 'forwarded').length === 200, 30_000)
  lag.disable()
  const at = receiver.requests.map((r) => r.at).sort((a, b) => a - b)
  assert.is(new Set(receiver.requests.map((r) => JSON.parse(r.body).id)).size, 200)
  assert.is(receiver.requests.length, 200, 'each event once')
  let busiest = 0
  for (let i = 0, j = 0; i < at.length; i++) {
    while ((at[i] as number) - (at[j] as number) >= 1000) j++
    busiest = Math.max(busiest, i - j + 1)
  }
  // the bucket grants at most burst + 50 tokens in any second of Redis's clock. The receiver stamps arrivals on
  // this process's event loop, which the two pipelines share: a stall of s seconds lets tokens granted during it
  // arrive together, so a window may see up to 50 × s more (at both of its ends). No other slack.
  const stallSeconds = lag.max / 1e9
  const bound = limit.perSecond + limit.burst + 1 + Math.ceil(2 * limit.perSecond * stallSeconds)
  assert.ok(busiest <= bound, `at most ${bound} requests in any second (longest event-loop stall ${Math.round(stallSeconds * 1000)} ms); got ${busiest}`)
  // over the whole run: after the burst, 190 requests at 50/s take at least 3.8 s (less what one stall can compress)
  const spanMs = (at.at(-1) as number) - (at[0] as number)
  const minSpanMs = ((200 - limit.burst) / limit.perSecond) * 1000 - 2 * lag.max / 1e6
  assert.ok(spanMs >= minSpanMs, `the 200 took at least (200 − burst) / 50 s less the longest stall: ${Math.round(minSpanMs)} ms; took ${spanMs} ms`)
  assert.is(await w.rowCount('webhook_dlq'), 0, 'nothing dead-lettered')
  assert.equal(events.length, 200)
})

Deliveries.run()
