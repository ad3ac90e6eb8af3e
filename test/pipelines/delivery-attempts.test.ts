import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DeliveryLog } from '../../src/db/delivery-log.js'
import { eventHistory } from '../../src/db/event-history.js'
import type { DeliveryEnvelope } from '../../src/pipelines/delivery.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { CircuitBreakers } from '../../src/sinks/circuit-breaker.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, startDeliveryRun, startReceiver, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'
import { parseExposition, sampleTotal } from '../observability/exposition.js'

interface Ctx { w: PipelineWorld; closers: (() => Promise<unknown> | unknown)[]; settled: DeliveryEnvelope[] }
const Attempts = suite<Ctx>('delivery pipeline: attempts and breakers per destination', {} as Ctx)

Attempts.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  ctx.closers = []
  ctx.settled = []
})
Attempts.after.each((ctx) => release(ctx, {
  closers: async (closers) => { for (const close of closers.reverse()) await close() },
  w: (w) => w.close(),
}))

const fast = { initial_interval: '10ms', max_interval: '40ms', multiplier: 2, max_retries: 5, max_elapsed_time: '1m' }

function startDelivery(ctx: Ctx, sink: ForwardSink, log: DeliveryLog): void {
  const run = startDeliveryRun(ctx.w, { forwardSink: sink, deliveryLog: log })
  ctx.settled = run.settled
  ctx.closers.push(() => run.close())
}

Attempts('two tools\' destinations of the same id are two series of the forward metrics, named as their breakers are', async (ctx) => {
  const { w, closers } = ctx
  const up = await startReceiver()
  const down = await startReceiver(() => 503)
  closers.push(() => up.close(), () => down.close())
  const metrics = createMetrics({ defaultMetrics: false })
  const opened: string[] = []
  const breakers = new CircuitBreakers({ failureThreshold: 2, coolDownMs: 60_000,
    onStateChange: (destination, state) => { metrics.destinationState(destination, state); if (state === 'open') opened.push(destination) } })
  const sink = new ForwardSink({ timeoutMs: 2000, breakers })
  const log = new DeliveryLog({ db: w.db.db, flushMs: 20 })
  closers.push(() => sink.close(), () => log.close())
  w.addTool({ id: 'alpha', provider: 'github', processing_mode: 'store', retry_policy: fast, destinations: [{ id: 'ci', url: up.url }] })
  w.addTool({ id: 'beta', provider: 'github', processing_mode: 'store', retry_policy: fast, destinations: [{ id: 'ci', url: down.url }] })
  await w.enqueue(1, { tool_id: 'alpha' })
  await w.enqueue(1, { tool_id: 'beta' })
  w.start()
  const run = startDeliveryRun(ctx.w, { forwardSink: sink, deliveryLog: log, metrics })
  closers.push(() => run.close())
  await eventually('alpha/ci delivered and beta/ci\'s breaker open', () => up.requests.length === 1 && opened.includes('beta/ci'), 30_000)
  const samples = parseExposition(await metrics.metricsText())
  assert.is(sampleTotal(samples, 'webhook_forward_attempts_total', { destination: 'alpha/ci', outcome: 'success' }), 1)
  assert.is(sampleTotal(samples, 'webhook_forward_attempts_total', { destination: 'beta/ci', outcome: 'transient' }), 2)
  assert.is(sampleTotal(samples, 'webhook_forward_duration_seconds_count', { destination: 'beta/ci' }), 2)
  assert.is(sampleTotal(samples, 'webhook_forward_attempts_total', { destination: 'ci' }), 0, 'no series mixes the two tools')
  assert.is(samples.get('webhook_destination_state{destination="beta/ci"}'), 2)
})

Attempts('each destination\'s attempts are logged under its id, and a dead one\'s breaker holds only its own deliveries', async (ctx) => {
  const { w, closers } = ctx
  const flaky = await startReceiver((n) => (n <= 2 ? { status: 500, body: `boom ${n}` } : { status: 200, body: 'taken' }))
  let alive = false
  const dead = await startReceiver(() => (alive ? 200 : 503))
  const ok = await startReceiver()
  closers.push(() => flaky.close(), () => dead.close(), () => ok.close())
  const opened: string[] = []
  const breakers = new CircuitBreakers({ failureThreshold: 3, coolDownMs: 200, maxCoolDownMs: 400,
    onStateChange: (destination, state) => { if (state === 'open') opened.push(destination) } })
  const sink = new ForwardSink({ timeoutMs: 2000, breakers })
  const log = new DeliveryLog({ db: w.db.db, flushMs: 20 })
  closers.push(() => sink.close(), () => log.close())
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast, destinations: [
    { id: 'flaky', url: flaky.url }, { id: 'dead', url: dead.url }, { id: 'ok', url: ok.url },
  ] })
  const [first] = await w.enqueue(1, { tool_id: 'fan' })
  w.start()
  startDelivery(ctx, sink, log)
  await eventually('flaky and ok delivered', () => ctx.settled.filter((e) => e.outcome === 'forwarded').length >= 2, 30_000)
  await eventually('the dead destination\'s breaker opened', () => opened.includes('fan/dead'), 30_000)
  // ten more events while "dead" is open: "ok" gets them all at once
  const more = await w.enqueue(10, { tool_id: 'fan' })
  await eventually('ok has all eleven', () => ok.requests.length === 11, 30_000)
  alive = true
  await eventually('dead got the backlog once it answers', () => new Set(dead.requests.filter((r) => r.headers['webhook-id'] !== undefined)
    .map((r) => String(r.headers['webhook-id']))).size === 11, 30_000)
  // the backlog's requests may have arrived while some still got 503: wait until every dead pair is delivered
  await eventually('every dead pair is delivered', async () => (await w.db.db.selectFrom('webhook_events').select('deliveries').execute())
    .every((r) => r.deliveries?.dead?.state === 'delivered'), 30_000)
  await log.flush()
  const rows = await w.db.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', first!.id).orderBy('attempt').execute()
  const byDestination = (id: string) => rows.filter((r) => r.destination_id === id).map((r) => [r.attempt, r.http_status])
  assert.equal(byDestination('flaky'), [[1, 500], [2, 500], [3, 200]])
  assert.equal(byDestination('ok'), [[1, 200]])
  assert.ok(byDestination('dead').length >= 3 && byDestination('dead').at(-1)?.[1] === 200, `dead: ${JSON.stringify(byDestination('dead'))}`)
  assert.is(rows.filter((r) => r.tool_id !== 'fan').length, 0)
  assert.equal(opened.filter((d) => d !== 'fan/dead'), [], 'only the dead destination\'s breaker opened (named with its tool)')
  const history = await eventHistory(w.db.db, 'fan', first!.id)
  assert.equal(history?.attempts.map((d) => d.destination_id).sort(), ['dead', 'flaky', 'ok'])
  assert.ok(more.length === 10)
  assert.is((await w.db.db.selectFrom('webhook_events').select('id').execute()).length, 11)
})

Attempts.run()
