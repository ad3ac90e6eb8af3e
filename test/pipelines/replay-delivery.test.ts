import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { DeliveryEnvelope } from '../../src/pipelines/delivery.js'
import { deliveryReplaySender, parseReplayRequest, startReplay } from '../../src/pipelines/replay.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { pipelineWorld, startDeliveryRun, startReceiver, type DeliveryRun, type PipelineWorld, type Receiver } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; receivers: Receiver[]; delivery: { run: DeliveryRun; sink: ForwardSink }; settled: DeliveryEnvelope[] }
const Replay = suite<Ctx>('replay through the delivery pipeline', {} as Ctx)

Replay.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  ctx.receivers = []
  ctx.settled = []
})
Replay.after.each((ctx) => release(ctx, {
  delivery: async (d) => { await d.sink.close(); await d.run.close() },
  receivers: (rs) => Promise.all(rs.map((r) => r.close())),
  w: (w) => w.close(),
}))

function startDelivery(ctx: Ctx): void {
  const sink = new ForwardSink({ timeoutMs: 30_000 })
  const run = startDeliveryRun(ctx.w, { forwardSink: sink })
  ctx.settled = run.settled
  ctx.delivery = { run, sink }
}

const idsOf = (r: Receiver, replay?: string) => r.requests
  .filter((q) => (replay === undefined ? q.headers['webhook-replay-id'] === undefined : q.headers['webhook-replay-id'] === replay))
  .map((q) => String(q.headers['webhook-id'])).sort()

Replay('delivered events are sent again to the destinations the fan-out chose, or to one, marked with the replay id', withTimeLimit(180_000, async (ctx) => {
  const { w } = ctx
  ctx.receivers = await Promise.all([startReceiver(), startReceiver()])
  const [pushes, all] = ctx.receivers as [Receiver, Receiver]
  w.addTool({
    id: 'fan', provider: 'github', processing_mode: 'store',
    destinations: [{ id: 'pushes', url: pushes.url, event_types: ['webhook.github.push'] }, { id: 'all', url: all.url }],
  })
  const events = await w.enqueue(40, (i) => ({ tool_id: 'fan', event_type: i % 2 === 0 ? 'webhook.github.push' : 'webhook.github.issues', payload: { n: i } }))
  const pushIds = events.filter((_, i) => i % 2 === 0).map((e) => e.id).sort()
  const allIds = events.map((e) => e.id).sort()
  w.start()
  startDelivery(ctx)
  await progressTo('first deliveries settled', () => ctx.settled.length, 60)
  assert.equal(idsOf(pushes), pushIds)
  assert.equal(idsOf(all), allIds)

  const send = deliveryReplaySender({ redis: w.redis, tools: { get: async (id) => w.tools.get(id) }, keysOf: () => w.keys })
  // every event of the tool, to the destinations each went to: pushes get the 20 pushes again, all gets 40
  const given = { tool: 'fan', confirm: 'true' }
  const first = await startReplay({ db: w.db.db, redis: w.redis, send, request: parseReplayRequest(given), given, actor: 'test' })
  if (first.dryRun) return assert.unreachable('not a dry run')
  const done = await first.finished
  assert.equal([done.status, done.matched, done.sent, done.skipped], ['done', 40, 40, 0])
  await progressTo('replayed deliveries settled', () => ctx.settled.length, 120)
  await eventually('the receivers have the replayed requests', () => idsOf(pushes, done.id).length === 20 && idsOf(all, done.id).length === 40, 30_000)
  assert.equal(idsOf(pushes, done.id), pushIds)
  assert.equal(idsOf(all, done.id), allIds)
  assert.ok(ctx.settled.slice(60).every((e) => e.outcome === 'forwarded'), 'each replayed pair was delivered, none a duplicate')

  // only the pushes of one destination, chosen: "all" gets nothing more
  const chosen = { tool: 'fan', event_type: 'webhook.github.push', destination: 'pushes' }
  const second = await startReplay({ db: w.db.db, redis: w.redis, send, request: parseReplayRequest(chosen), given: chosen, actor: 'test' })
  if (second.dryRun) return assert.unreachable('not a dry run')
  const again = await second.finished
  assert.equal([again.matched, again.sent], [20, 20])
  await progressTo('the chosen replay settled', () => ctx.settled.length, 140)
  assert.equal(idsOf(pushes, again.id), pushIds)
  assert.equal(idsOf(all, again.id), [])
  assert.is(all.requests.length, 80)
  const states = await w.db.db.selectFrom('webhook_events').select('deliveries').execute()
  assert.ok(states.every((r) => r.deliveries?.all?.state === 'delivered'))
}))

Replay.run()
