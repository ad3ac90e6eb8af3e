import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac } from 'node:crypto'
import { from, lastValueFrom, toArray } from 'rxjs'
import type { Redis } from 'ioredis'
import { DeliveryStateStore } from '../../src/db/delivery-states.js'
import { DlqStore } from '../../src/db/dlq-store.js'
import { EventStore } from '../../src/db/event-store.js'
import { fanOut } from '../../src/operators/fan-out.js'
import { fanoutKey } from '../../src/sources/keys.js'
import { asOneBatch, envelope } from '../operators/helpers.js'
import { eventHistory } from '../../src/db/event-history.js'
import type { DeliveryEnvelope } from '../../src/pipelines/delivery.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { pipelineWorld, startDeliveryRun, startReceiver, type DeliveryRun, type PipelineWorld, type Receiver } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; receivers: Receiver[]; delivery: { run: DeliveryRun; sink: ForwardSink }; settled: DeliveryEnvelope[] }
const Fanout = suite<Ctx>('fan-out to destinations', {} as Ctx)

Fanout.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  ctx.receivers = []
  ctx.settled = []
})
Fanout.after.each((ctx) => release(ctx, {
  delivery: async (d) => { await d.sink.close(); await d.run.close() },
  receivers: (rs) => Promise.all(rs.map((r) => r.close())),
  w: (w) => w.close(),
}))

const EVENTS = 1000
const SECRET_C = 'whsec_' + Buffer.alloc(32, 7).toString('base64')
const PREVIOUS_C = 'whsec_' + Buffer.alloc(32, 5).toString('base64')
const fast = { initial_interval: '20ms', max_interval: '100ms', multiplier: 2, max_retries: 50, max_elapsed_time: '10m' }
const typeOf = (i: number) => (i % 3 === 0 ? 'webhook.github.push' : i % 3 === 1 ? 'webhook.github.pull_request' : 'webhook.github.pull_request_review')

function startDelivery(ctx: Ctx): void {
  const sink = new ForwardSink({ timeoutMs: 30_000 })
  const run = startDeliveryRun(ctx.w, { forwardSink: sink })
  ctx.settled = run.settled
  ctx.delivery = { run, sink }
}

function idsOf(r: Receiver): string[] {
  return r.requests.map((q) => String(q.headers['webhook-id']))
}

async function states(w: PipelineWorld, destination: string): Promise<Record<string, number>> {
  const rows = await w.db.db.selectFrom('webhook_events').select('deliveries').execute()
  const out: Record<string, number> = {}
  for (const r of rows) {
    const state = r.deliveries?.[destination]?.state ?? 'none'
    out[state] = (out[state] ?? 0) + 1
  }
  return out
}

function addFanTool(w: PipelineWorld, urls: readonly string[], extraC: Record<string, unknown> = {}): void {
  w.addTool({
    id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast,
    destinations: [
      { id: 'pushes', url: urls[0], event_types: ['webhook.github.push'] },
      { id: 'prs', url: urls[1], event_types: ['webhook.github.pull_request*'], filter: 'action = "opened"' },
      { id: 'big', url: urls[2], filter: 'n >= 500', transform: '{ "n": n, "kind": "big" }', secret: SECRET_C, previous_secret: PREVIOUS_C, ...extraC },
    ],
  })
}

Fanout('1,000 events to three destinations with type globs and JSONata filters: each receiver gets exactly its events, once each', withTimeLimit(240_000, async (ctx) => {
  const { w } = ctx
  ctx.receivers = await Promise.all([startReceiver(), startReceiver(), startReceiver()])
  const [a, b, c] = ctx.receivers as [Receiver, Receiver, Receiver]
  addFanTool(w, [a.url, b.url, c.url])
  const events = await w.enqueue(EVENTS, (i) => ({ tool_id: 'fan', event_type: typeOf(i), payload: { n: i, action: i % 2 ? 'opened' : 'closed' } }))
  const want = {
    a: events.filter((_, i) => i % 3 === 0).map((e) => e.id),
    b: events.filter((_, i) => i % 3 !== 0 && i % 2 === 1).map((e) => e.id),
    c: events.filter((_, i) => i >= 500).map((e) => e.id),
  }
  w.start()
  startDelivery(ctx)
  const total = want.a.length + want.b.length + want.c.length
  // a delivery that found its destination's slots busy for a second (a loaded box) is parked and comes back, so
  // it settles twice: count the deliveries made
  const made = () => ctx.settled.filter((e) => e.outcome === 'forwarded').length
  await progressTo('all deliveries made', made, total)
  await eventually('all events settled', () => w.settled.length === EVENTS, 60_000)
  assert.equal(idsOf(a).sort(), [...want.a].sort())
  assert.equal(idsOf(b).sort(), [...want.b].sort())
  assert.equal(idsOf(c).sort(), [...want.c].sort())
  // the transform's result is the body, signed with the destination's own secret
  const first = c.requests[0]!
  assert.equal(Object.keys(JSON.parse(first.body)).sort(), ['kind', 'n'])
  // during a rotation both of the destination's secrets sign (never the tool's)
  const signatures = String(first.headers['webhook-signature']).split(' ')
  for (const secret of [SECRET_C, PREVIOUS_C]) {
    const expected = createHmac('sha256', Buffer.from(secret.slice(6), 'base64'))
      .update(`${first.headers['webhook-id']}.${first.headers['webhook-timestamp']}.${first.body}`).digest('base64')
    assert.ok(signatures.includes(`v1,${expected}`), 'signed with the destination secret and its previous one')
  }
  assert.is(signatures.length, 2)
  assert.equal(await states(w, 'pushes'), { delivered: want.a.length, filtered: EVENTS - want.a.length })
  assert.equal(await states(w, 'prs'), { delivered: want.b.length, filtered: EVENTS - want.b.length })
  assert.equal(await states(w, 'big'), { delivered: want.c.length, filtered: EVENTS - want.c.length })
  assert.is(await w.rowCount('webhook_dlq'), 0)
  assert.is(made(), total)
  assert.equal(ctx.settled.filter((e) => e.outcome !== 'forwarded' && e.outcome !== 'parked'), [])
  // the event's fate shows each destination's state
  const fate = await eventHistory(w.db.db, 'fan', events[501]!.id)
  assert.equal(Object.fromEntries(Object.entries(fate!.deliveries).map(([k, v]) => [k, v.state])), { pushes: 'delivered', prs: 'filtered', big: 'delivered' })
}))

Fanout('a destination that never answers does not delay the other two: they receive everything while its deliveries wait', withTimeLimit(120_000, async (ctx) => {
  const { w } = ctx
  const hang = new Promise<number>(() => {})
  ctx.receivers = await Promise.all([startReceiver(), startReceiver(), startReceiver(() => hang)])
  const [a, b, c] = ctx.receivers as [Receiver, Receiver, Receiver]
  addFanTool(w, [a.url, b.url, c.url], { timeout: '30s' })
  const events = await w.enqueue(300, (i) => ({ tool_id: 'fan', event_type: typeOf(i), payload: { n: 1000 + i, action: i % 2 ? 'opened' : 'closed' } }))
  const wantA = events.filter((_, i) => i % 3 === 0).length
  const wantB = events.filter((_, i) => i % 3 !== 0 && i % 2 === 1).length
  const started = Date.now()
  w.start()
  startDelivery(ctx)
  // the hanging receiver holds each of its requests for the whole 30 s timeout: had its deliveries shared the
  // others' slots or credit, the others would still be waiting when this deadline passes
  await eventually('the two healthy receivers got everything', () => a.requests.length >= wantA && b.requests.length >= wantB, 25_000)
  const tookMs = Date.now() - started
  await eventually('all events stored and settled', () => w.settled.length === 300, 20_000)
  assert.is(new Set(idsOf(a)).size, wantA)
  assert.is(new Set(idsOf(b)).size, wantB)
  assert.ok(c.requests.length > 0, 'the hanging receiver was tried')
  const big = await states(w, 'big')
  assert.is(big.delivered, undefined, JSON.stringify(big))
  assert.is(big.pending, 300)
  assert.is(await w.rowCount('webhook_dlq'), 0)
  console.log(`  healthy destinations done in ${tookMs} ms while one destination hangs`)
}))

Fanout('a re-driven delivery whose enqueue failed once (Redis blip) is enqueued when the held batch runs again, not left pending for ever', withTimeLimit(60_000, async (ctx) => {
  const { w } = ctx
  const tool = w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', destinations: [{ id: 'ok', url: 'http://127.0.0.1:9/ok' }, { id: 'gone', url: 'http://127.0.0.1:9/gone' }] })
  // the event was stored and fanned out; its delivery to "gone" was dead-lettered; the DLQ re-queued it (retry_count 1)
  const env = envelope({ tool_id: 'fan', retry_count: 1 })
  const event = env.message.event
  const stored = await new EventStore({ db: w.db.db }).write([{ id: event.id, tool_id: 'fan', tenant_id: event.tenant_id, event_type: event.event_type,
    repository: event.repository, payload: event.payload, stream_id: '1-0', received_at: event.timestamp }])
  assert.is(stored.size, 0)
  await new DeliveryStateStore({ db: w.db.db }).set([{ event, destinationId: 'ok', state: 'delivered' }, { event, destinationId: 'gone', state: 'failed', errorCode: 'DESTINATION_4XX' }])
  await w.redis.set(fanoutKey(w.keys, 'fan', event.id), '1', 'EX', 3600)
  // the re-drive's enqueue (the script run with "once" off) fails once, as a lost connection would; the batch is held
  let failures = 0
  const redis = { call: (command: string, ...args: (string | number | Buffer)[]) => {
    const onceFlag = /^EVAL/i.test(command) ? args[2 + Number(args[1]) + 1] : undefined
    if (failures === 0 && String(onceFlag) === '0') { failures++; return Promise.reject(new Error('Connection is closed.')) }
    return (w.redis.call as (...a: unknown[]) => Promise<unknown>)(command, ...args)
  } } as unknown as Redis
  const [out] = await lastValueFrom(from([{ ...env, tool, stored: true, outcome: 'duplicate' as const }]).pipe(
    asOneBatch(fanOut({ redis, db: w.db.db, keys: w.keys, hold: { initialDelayMs: 10 } })), toArray()))
  assert.is(failures, 1, 'the re-drive\'s enqueue failed once')
  assert.is(out?.failure, undefined)
  const entries = (await w.redis.call('XRANGE', w.keys.deliveryStream, '-', '+')) as [string, string[]][]
  const destinations = entries.map(([, fields]) => fields[fields.indexOf('destination') + 1])
  assert.equal(destinations, ['gone'], 'the failed pair is on the delivery stream once the enqueue went through')
  assert.is((await eventHistory(w.db.db, 'fan', event.id))!.deliveries.gone?.state, 'pending')
}))

Fanout('a re-driven event whose pair failed on its filter evaluates that filter again: refused, the pair is filtered and nothing is enqueued; failing again, it is dead-lettered', withTimeLimit(60_000, async (ctx) => {
  const { w } = ctx
  const tool = w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', destinations: [
    { id: 'no', url: 'http://127.0.0.1:9/no', filter: 'n > 5' }, { id: 'broken', url: 'http://127.0.0.1:9/broken', filter: '$error("still broken")' }] })
  // the event was stored and fanned out while both filters failed; the DLQ re-queued it (retry_count 1)
  const env = envelope({ tool_id: 'fan', retry_count: 1, payload: { n: 1 } })
  const event = env.message.event
  await new EventStore({ db: w.db.db }).write([{ id: event.id, tool_id: 'fan', tenant_id: event.tenant_id, event_type: event.event_type,
    repository: event.repository, payload: event.payload, stream_id: '1-0', received_at: event.timestamp }])
  await new DeliveryStateStore({ db: w.db.db }).set([{ event, destinationId: 'no', state: 'failed', errorCode: 'TRANSFORM_TIMEOUT' },
    { event, destinationId: 'broken', state: 'failed', errorCode: 'TRANSFORM_FAILED' }])
  await w.redis.set(fanoutKey(w.keys, 'fan', event.id), '1', 'EX', 3600)
  const [out] = await lastValueFrom(from([{ ...env, tool, stored: true, outcome: 'duplicate' as const }]).pipe(
    asOneBatch(fanOut({ redis: w.redis, db: w.db.db, keys: w.keys })), toArray()))
  assert.is(out?.failure, undefined)
  assert.is(out?.outcome, 'duplicate', 'the event itself passes on as it was')
  const entries = (await w.redis.call('XRANGE', w.keys.deliveryStream, '-', '+')) as [string, string[]][]
  assert.equal(entries.map(([, fields]) => fields[fields.indexOf('destination') + 1]), [], 'no pair is delivered past its filter')
  const fate = (await eventHistory(w.db.db, 'fan', event.id))!
  assert.equal([fate.deliveries.no?.state, fate.deliveries.broken?.state, fate.deliveries.broken?.error_code], ['filtered', 'failed', 'DESTINATION_FILTER_FAILED'])
  assert.equal(fate.dlq.map((d) => [d.status, d.error_code, d.retry_count]), [['pending', 'DESTINATION_FILTER_FAILED', 1]])
  assert.match(fate.dlq[0]!.error, 'destination "broken" of tool "fan": its filter failed (TRANSFORM_FAILED)')
  assert.not.match(fate.dlq[0]!.error, '"no"')
}))

Fanout('a delivery refused with 4xx is dead-lettered and recorded failed; retried from the DLQ it is delivered again to that destination only', withTimeLimit(120_000, async (ctx) => {
  const { w } = ctx
  let refuse = true
  ctx.receivers = await Promise.all([startReceiver(), startReceiver(() => (refuse ? 410 : 200))])
  const [ok, gone] = ctx.receivers as [Receiver, Receiver]
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast,
    destinations: [{ id: 'ok', url: ok.url }, { id: 'gone', url: gone.url }] })
  const [event] = await w.enqueue(1, { tool_id: 'fan' })
  w.start()
  startDelivery(ctx)
  await eventually('both deliveries settled', () => ctx.settled.length === 2, 30_000)
  assert.equal(ctx.settled.map((e) => e.outcome).sort(), ['dead_lettered', 'forwarded'])
  const failed = (await eventHistory(w.db.db, 'fan', event!.id))!
  assert.equal([failed.deliveries.ok?.state, failed.deliveries.gone?.state, failed.deliveries.gone?.error_code], ['delivered', 'failed', 'DESTINATION_4XX'])
  assert.equal(failed.dlq.map((d) => [d.status, d.error_code]), [['pending', 'DESTINATION_4XX']])
  refuse = false
  await new DlqStore({ db: w.db.db, stream: w.stream }).retryOne(failed.dlq[0]!.id, 'test')
  await eventually('delivered again', async () => (await eventHistory(w.db.db, 'fan', event!.id))!.deliveries.gone?.state === 'delivered', 30_000)
  assert.is(ok.requests.length, 1, 'the destination that had it does not get it again')
  assert.is(gone.requests.length, 2)
  await eventually('the DLQ row resolved', async () => (await eventHistory(w.db.db, 'fan', event!.id))!.dlq[0]?.status === 'resolved', 10_000)
}))

Fanout('a tool that forwards and fans out: after its forward and a delivery were both dead-lettered, a retry from the DLQ forwards it and delivers it again to that destination', withTimeLimit(120_000, async (ctx) => {
  const { w } = ctx
  let refuse = true
  ctx.receivers = await Promise.all([startReceiver(() => (refuse ? 410 : 200)), startReceiver(() => (refuse ? 410 : 200))])
  const [forward, gone] = ctx.receivers as [Receiver, Receiver]
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store_and_forward', forward_url: forward.url, retry_policy: fast,
    destinations: [{ id: 'gone', url: gone.url }] })
  const [event] = await w.enqueue(1, { tool_id: 'fan' })
  w.start()
  startDelivery(ctx)
  await eventually('the event and its delivery dead-lettered', () => w.settled.length === 1 && ctx.settled.length === 1, 30_000)
  assert.equal([w.settled[0]?.outcome, ctx.settled[0]?.outcome], ['dead_lettered', 'dead_lettered'])
  const failed = (await eventHistory(w.db.db, 'fan', event!.id))!
  assert.is(failed.deliveries.gone?.state, 'failed')
  const open = failed.dlq.filter((d) => d.status === 'pending')
  assert.is(open.length, 1, 'one open DLQ row for the event')
  refuse = false
  await new DlqStore({ db: w.db.db, stream: w.stream }).retryOne(open[0]!.id, 'test')
  await eventually('forwarded again', () => forward.requests.length === 2, 30_000)
  await eventually('delivered again', async () => (await eventHistory(w.db.db, 'fan', event!.id))!.deliveries.gone?.state === 'delivered', 30_000)
  assert.is(gone.requests.length, 2)
}))

Fanout('a destination filter that fails at run time is dead-lettered naming each destination and its filter failure; fixed and retried from the DLQ, each filter runs again and the pair is delivered or filtered', withTimeLimit(120_000, async (ctx) => {
  const { w } = ctx
  ctx.receivers = await Promise.all([startReceiver(), startReceiver(), startReceiver()])
  const [ok, picky, strict] = ctx.receivers as [Receiver, Receiver, Receiver]
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast,
    destinations: [{ id: 'ok', url: ok.url }, { id: 'picky', url: picky.url, filter: 'n > 0 ? $error("no such field: size") : true' },
      { id: 'strict', url: strict.url, filter: '$error("strict says no")' }] })
  const [event] = await w.enqueue(1, { tool_id: 'fan', payload: { n: 1 } })
  w.start()
  startDelivery(ctx)
  await eventually('the event settled and its one delivery made', () => w.settled.length === 1 && ok.requests.length === 1, 30_000)
  assert.is(w.settled[0]?.outcome, 'stored', 'the event itself is stored: a destination\'s filter does not fail it')
  const failed = (await eventHistory(w.db.db, 'fan', event!.id))!
  // every failed pair is in sight: one open DLQ row for the event, naming both destinations and why their filters failed
  assert.equal(failed.dlq.map((d) => [d.status, d.error_code, d.error_class]), [['pending', 'DESTINATION_FILTER_FAILED', 'permanent']])
  assert.equal([failed.deliveries.ok?.state, failed.deliveries.picky?.state, failed.deliveries.strict?.state], ['delivered', 'failed', 'failed'])
  assert.equal([failed.deliveries.picky?.error_code, failed.deliveries.strict?.error_code], ['DESTINATION_FILTER_FAILED', 'DESTINATION_FILTER_FAILED'])
  const error = failed.dlq[0]!.error
  assert.match(error, 'destination "picky" of tool "fan": its filter failed (TRANSFORM_FAILED)')
  assert.match(error, 'no such field: size')
  assert.match(error, 'destination "strict" of tool "fan": its filter failed (TRANSFORM_FAILED)')
  assert.match(error, 'strict says no')
  assert.match(error, 'retry the event from the DLQ')
  // fixed: picky's filter now takes the event, strict's refuses it
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast,
    destinations: [{ id: 'ok', url: ok.url }, { id: 'picky', url: picky.url, filter: 'n > 0' }, { id: 'strict', url: strict.url, filter: 'n > 5' }] })
  await new DlqStore({ db: w.db.db, stream: w.stream }).retryOne(failed.dlq[0]!.id, 'test')
  await eventually('picky delivered, strict filtered', async () => {
    const d = (await eventHistory(w.db.db, 'fan', event!.id))!.deliveries
    return d.picky?.state === 'delivered' && d.strict?.state === 'filtered'
  }, 30_000)
  await eventually('the DLQ row resolved', async () => (await eventHistory(w.db.db, 'fan', event!.id))!.dlq[0]?.status === 'resolved', 10_000)
  assert.is(picky.requests.length, 1)
  assert.is(strict.requests.length, 0, 'a filter that now refuses the event sends nothing')
  assert.is(ok.requests.length, 1, 'the destination that had it does not get it again')
}))

Fanout('a destination filter that runs past the tool\'s transform_timeout is dead-lettered with the timeout named', withTimeLimit(60_000, async (ctx) => {
  const { w } = ctx
  // a 1 ms budget that a count over ten million numbers cannot meet, however fast the box
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', transform_timeout: '1ms',
    destinations: [{ id: 'slow', url: 'http://127.0.0.1:9/slow', filter: '$count([1..9999999]) > 0' }] })
  const [event] = await w.enqueue(1, { tool_id: 'fan', payload: { n: 1 } })
  w.start()
  await eventually('the event settled', () => w.settled.length === 1, 30_000)
  const failed = (await eventHistory(w.db.db, 'fan', event!.id))!
  assert.equal(failed.dlq.map((d) => [d.status, d.error_code]), [['pending', 'DESTINATION_FILTER_FAILED']])
  assert.equal([failed.deliveries.slow?.state, failed.deliveries.slow?.error_code], ['failed', 'DESTINATION_FILTER_FAILED'])
  assert.match(failed.dlq[0]!.error, 'destination "slow" of tool "fan": its filter failed (TRANSFORM_TIMEOUT)')
  assert.match(failed.dlq[0]!.error, 'transform_timeout')
}))

Fanout('a filter that fails again on a DLQ retry keeps the pair failed and its DLQ row open, a round further on', withTimeLimit(120_000, async (ctx) => {
  const { w } = ctx
  ctx.receivers = [await startReceiver()]
  const [picky] = ctx.receivers as [Receiver]
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast,
    destinations: [{ id: 'picky', url: picky.url, filter: '$error("still broken")' }] })
  const [event] = await w.enqueue(1, { tool_id: 'fan', payload: { n: 1 } })
  w.start()
  startDelivery(ctx)
  await eventually('dead-lettered', async () => (await eventHistory(w.db.db, 'fan', event!.id))?.dlq[0]?.status === 'pending', 30_000)
  const dlq = new DlqStore({ db: w.db.db, stream: w.stream })
  const id = (await eventHistory(w.db.db, 'fan', event!.id))!.dlq[0]!.id
  await dlq.retryOne(id, 'test')
  await eventually('the re-queued event went through the pipeline', () => w.settled.length === 2, 30_000)
  const after = (await eventHistory(w.db.db, 'fan', event!.id))!
  assert.equal(after.dlq.map((d) => [d.id, d.status, d.error_code, d.retry_count]), [[id, 'pending', 'DESTINATION_FILTER_FAILED', 1]])
  assert.match(after.dlq[0]!.error, 'still broken')
  assert.is(after.deliveries.picky?.state, 'failed')
  assert.is(picky.requests.length, 0, 'a filter that failed never lets the event through')
}))

Fanout('a destination transform that fails is dead-lettered naming the destination and its transform; fixed and retried from the DLQ it is delivered with the new body', withTimeLimit(120_000, async (ctx) => {
  const { w } = ctx
  ctx.receivers = [await startReceiver()]
  const [shaped] = ctx.receivers as [Receiver]
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast,
    destinations: [{ id: 'shaped', url: shaped.url, transform: '$error("transform bug")' }] })
  const [event] = await w.enqueue(1, { tool_id: 'fan', payload: { n: 7 } })
  w.start()
  startDelivery(ctx)
  await eventually('the delivery dead-lettered', () => ctx.settled.some((e) => e.outcome === 'dead_lettered'), 30_000)
  const failed = (await eventHistory(w.db.db, 'fan', event!.id))!
  assert.equal([failed.deliveries.shaped?.state, failed.deliveries.shaped?.error_code], ['failed', 'TRANSFORM_FAILED'])
  assert.equal(failed.dlq.map((d) => [d.status, d.error_code]), [['pending', 'TRANSFORM_FAILED']])
  assert.match(failed.dlq[0]!.error, 'destination "shaped" of tool "fan": its transform failed')
  assert.match(failed.dlq[0]!.error, 'transform bug')
  assert.is(shaped.requests.length, 0)
  w.addTool({ id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast,
    destinations: [{ id: 'shaped', url: shaped.url, transform: '{ "m": n * 2 }' }] })
  await new DlqStore({ db: w.db.db, stream: w.stream }).retryOne(failed.dlq[0]!.id, 'test')
  await eventually('delivered', async () => (await eventHistory(w.db.db, 'fan', event!.id))!.deliveries.shaped?.state === 'delivered', 30_000)
  assert.equal(shaped.requests.map((r) => JSON.parse(r.body)), [{ m: 14 }])
  await eventually('the DLQ row resolved', async () => (await eventHistory(w.db.db, 'fan', event!.id))!.dlq[0]?.status === 'resolved', 10_000)
}))

Fanout.run()
