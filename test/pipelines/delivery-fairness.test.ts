import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { DeliveryEnvelope } from '../../src/pipelines/delivery.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { pipelineWorld, startDeliveryRun, startReceiver, type DeliveryRun, type PipelineWorld, type Receiver } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; receiver: Receiver; delivery: { run: DeliveryRun; sink: ForwardSink }; settled: DeliveryEnvelope[] }
const Fairness = suite<Ctx>('delivery fairness between tools', {} as Ctx)

Fairness.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
})
Fairness.after.each((ctx) => release(ctx, {
  delivery: async (d) => { await d.sink.close(); await d.run.close() },
  receiver: (r) => r.close(),
  w: (w) => w.close(),
}))

const fast = { initial_interval: '20ms', max_interval: '100ms', multiplier: 2, max_retries: 50, max_elapsed_time: '10m' }

Fairness('a slow but answering destination of one tool does not hold up another tool\'s destination on the same origin', withTimeLimit(180_000, async (ctx) => {
  const { w } = ctx
  // tool A's destination answers every request, after A_DELAY_MS: its breaker never opens
  const A_DELAY_MS = 3000
  const A_EVENTS = 200
  const B_EVENTS = 20
  let slow = true
  let aOpen = 0
  let aMostOpen = 0
  ctx.receiver = await startReceiver(async (_n, body) => {
    if (slow && body.includes('"tool_id":"tool-a"')) {
      aMostOpen = Math.max(aMostOpen, ++aOpen)
      await new Promise((resolve) => setTimeout(resolve, A_DELAY_MS))
      aOpen--
    }
    return 200
  })
  const rx = ctx.receiver
  // one origin for both: they share its connections (perDestinationConcurrency, 10)
  w.addTool({ id: 'tool-a', provider: 'github', processing_mode: 'store', retry_policy: fast, destinations: [{ id: 'ci', url: `${rx.url}?to=a` }] })
  w.addTool({ id: 'tool-b', provider: 'github', processing_mode: 'store', retry_policy: fast, destinations: [{ id: 'ci', url: `${rx.url}?to=b` }] })
  // A's deliveries come first on the delivery stream, more than the pipeline's concurrency (64) and read credit (100)
  const aEvents = await w.enqueue(A_EVENTS, { tool_id: 'tool-a' })
  const bEvents = await w.enqueue(B_EVENTS, { tool_id: 'tool-b' })
  const sink = new ForwardSink({ timeoutMs: 10_000 })
  w.start()
  const run = startDeliveryRun(w, { forwardSink: sink })
  ctx.delivery = { run, sink }
  ctx.settled = run.settled
  const idsTo = (to: string) => rx.requests.filter((q) => q.headers['webhook-id'] !== undefined && JSON.parse(q.body).tool_id === to).map((q) => String(q.headers['webhook-id']))
  await eventually('the first of A\'s requests reached the receiver', () => idsTo('tool-a').length > 0, 30_000)
  const aStarted = Date.now()
  // B's destination answers at once, so only the box may delay it: twice A's delay is plenty. Had A's waiters filled
  // the pipeline's concurrency and the origin's slots, B would wait behind A's backlog (200 × 3 s / 10 slots)
  const boundMs = 2 * A_DELAY_MS
  const served = await eventually('all of B\'s deliveries made', () => new Set(idsTo('tool-b')).size === B_EVENTS, boundMs).then(() => true, () => false)
  const tookMs = Date.now() - aStarted
  assert.ok(served, `B's destination got ${new Set(idsTo('tool-b')).size} of ${B_EVENTS} deliveries within ${boundMs} ms of A's first request ` +
    `(A answers after ${A_DELAY_MS} ms; A got ${idsTo('tool-a').length} requests so far)`)
  assert.ok(aMostOpen <= 9, `A held at most all but one of the origin's 10 slots; it held ${aMostOpen}`)
  console.log(`  B's ${B_EVENTS} deliveries made ${tookMs} ms after A's first request (A answers after ${A_DELAY_MS} ms)`)
  // nothing of A's is lost: once A answers at once, every one of its deliveries is made, none dead-lettered
  slow = false
  await progressTo('all of A\'s deliveries made', () => new Set(idsTo('tool-a')).size, A_EVENTS)
  assert.equal(new Set(idsTo('tool-a')), new Set(aEvents.map((e) => e.id)))
  assert.equal(new Set(idsTo('tool-b')), new Set(bEvents.map((e) => e.id)))
  await eventually('every delivery settled as made', () => new Set(ctx.settled.filter((e) => e.outcome === 'forwarded').map((e) => e.message.event.id)).size === A_EVENTS + B_EVENTS, 60_000)
  assert.is(await w.rowCount('webhook_dlq'), 0)
}))

Fairness.run()
