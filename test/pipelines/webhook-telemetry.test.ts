import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Writable } from 'node:stream'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { pipelineWorld, startReceiver, type PipelineWorld, type Receiver } from '../helpers/pipeline.js'
import { DlqStore } from '../../src/db/dlq-store.js'
import { createLogger } from '../../src/observability/logger.js'
import { createMetrics, type Metrics } from '../../src/observability/metrics.js'
import { parseExposition, sampleTotal } from '../observability/exposition.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; metrics: Metrics; receivers: Receiver[] }
const Telemetry = suite<Ctx>('webhook pipeline telemetry', {} as Ctx)

Telemetry.before.each(async (ctx) => {
  const pg = await sharedPostgres()
  ctx.w = await pipelineWorld((await sharedRedis()).url, await pg.createDatabase())
  ctx.metrics = createMetrics({ defaultMetrics: false })
  ctx.receivers = []
  ctx.w.addTool({ id: 'store-tool', provider: 'github', processing_mode: 'store' })
})
Telemetry.after.each((ctx) => release(ctx, {
  w: (w) => w.close(), receivers: (rs) => Promise.all(rs.map((r) => r.close())), metrics: (m) => m.close(),
}))

const fast = { initial_interval: '10ms', max_interval: '40ms', multiplier: 2, max_retries: 3, max_elapsed_time: '1m' }
const slow = { initial_interval: '30s', max_interval: '60s', multiplier: 2, max_retries: 3, max_elapsed_time: '10m' }

async function samples(metrics: Metrics): Promise<Map<string, number>> {
  return parseExposition(await metrics.metricsText())
}

// the value of one series, 0 when it was never exposed
const value = sampleTotal

Telemetry('every counter matches what happened to a mix of stored, duplicate, retried, parked and dead-lettered events', async (ctx) => {
  const { w, metrics } = ctx
  const failedOnce = new Set<string>()
  const flaky = await startReceiver((_, body) => {
    const id = JSON.parse(body).id as string
    if (failedOnce.has(id)) return 200
    failedOnce.add(id)
    return 500
  })
  const rejecting = await startReceiver(() => 400)
  const throttling = await startReceiver(() => 429)
  ctx.receivers.push(flaky, rejecting, throttling)
  w.addTool({ id: 'fwd', provider: 'github', processing_mode: 'store_and_forward', forward_url: flaky.url, retry_policy: fast })
  w.addTool({ id: 'fwd-bad', provider: 'github', processing_mode: 'store_and_forward', forward_url: rejecting.url, retry_policy: fast })
  w.addTool({ id: 'fwd-slow', provider: 'github', processing_mode: 'store_and_forward', forward_url: throttling.url, retry_policy: slow })
  w.addTool({ id: 'tx', provider: 'gitlab', processing_mode: 'transform_and_store', transform: { ref: 'ref' } })

  // a DLQ entry being re-driven: its event comes back with retry_count 1 and resolves the row
  const redriven = makeEvent({ tool_id: 'store-tool', retry_count: 1 })
  await w.db.db.insertInto('webhook_dlq').values({ event_id: redriven.id, tool_id: 'store-tool', event: JSON.stringify(redriven),
    error: 'forward got 503', error_class: 'transient', error_code: 'DESTINATION_5XX', retry_count: 1, status: 'retrying' }).execute()
  await w.stream.addMany([redriven])

  const stored = await w.enqueue(6)
  await w.enqueue(3, { tool_id: 'fwd' })
  await w.enqueue(2, { tool_id: 'fwd-bad' })
  await w.enqueue(1, { tool_id: 'fwd-slow' })
  await w.enqueue(2, { tool_id: 'tx', event_type: 'webhook.gitlab.push', payload: { ref: 'main' } })
  await w.enqueue(1, { tool_id: 'ghost' })
  w.start({ telemetry: { metrics }, maxInlineRetryDelayMs: 1000 })
  await eventually('16 settled', () => w.settled.length === 16)
  // the same ids again: recognised as duplicates
  await w.stream.addMany(stored.slice(0, 2))
  await eventually('18 settled', () => w.settled.length === 18)

  const s = await samples(metrics)
  const push = 'webhook.github.push'
  const received = (tool: string, type = push) => value(s, 'webhook_events_received_total', { event_type: type, tool_id: tool })
  assert.equal([received('store-tool'), received('fwd'), received('fwd-bad'), received('fwd-slow'), received('tx', 'webhook.gitlab.push'),
    received('ghost')], [9, 3, 2, 1, 2, 1])
  assert.is(value(s, 'webhook_events_received_total'), 18)
  const processed = (status: string, tool?: string) =>
    value(s, 'webhook_events_processed_total', { status, ...(tool ? { tool_id: tool } : {}) })
  assert.equal({
    stored: processed('stored'), duplicate: processed('duplicate'), forwarded: processed('forwarded'),
    transformed: processed('transformed'), dead_lettered: processed('dead_lettered'), retry_scheduled: processed('retry_scheduled'),
  }, { stored: 7, duplicate: 2, forwarded: 3, transformed: 2, dead_lettered: 3, retry_scheduled: 1 })
  assert.is(processed('dead_lettered', 'fwd-bad'), 2)
  assert.is(processed('dead_lettered', 'ghost'), 1)
  assert.is(value(s, 'webhook_events_processed_total'), 18)
  assert.is(value(s, 'webhook_event_processing_duration_seconds_count'), 18)
  assert.is(value(s, 'webhook_event_processing_duration_seconds_count', { status: 'stored', tool_id: 'store-tool' }), 7)
  assert.ok(value(s, 'webhook_event_processing_duration_seconds_sum') > 0, 'durations are recorded')
  assert.equal({
    fiveHundred: value(s, 'webhook_retry_attempts_total', { attempt: '1', reason: 'DESTINATION_5XX' }),
    throttled: value(s, 'webhook_retry_attempts_total', { attempt: '1', reason: 'DESTINATION_429' }),
    all: value(s, 'webhook_retry_attempts_total'),
  }, { fiveHundred: 3, throttled: 1, all: 4 })
  assert.equal({
    fourHundred: value(s, 'webhook_dlq_entries_total', { event_type: push, reason: 'DESTINATION_4XX' }),
    unknownTool: value(s, 'webhook_dlq_entries_total', { event_type: push, reason: 'UNKNOWN_TOOL' }),
    all: value(s, 'webhook_dlq_entries_total'),
  }, { fourHundred: 2, unknownTool: 1, all: 3 })
  assert.is(value(s, 'webhook_dlq_retries_total', { status: 'resolved' }), 1)
  assert.is(value(s, 'webhook_dlq_retries_total'), 1)
  // what the counters say is what the database and receivers saw
  assert.is(await w.rowCount('webhook_dlq'), 3 + 1)
  assert.is(flaky.requests.length, 6)
  assert.is(value(s, 'webhook_in_flight'), 0)
})

Telemetry('webhook_in_flight reads the unsettled messages of the source at scrape time', async (ctx) => {
  const { w, metrics } = ctx
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const blocking = await startReceiver(async () => { await gate; return 200 })
  ctx.receivers.push(blocking)
  w.addTool({ id: 'fwd', provider: 'github', processing_mode: 'store_and_forward', forward_url: blocking.url })
  await w.enqueue(3, { tool_id: 'fwd' })
  w.start({ telemetry: { metrics } })
  await eventually('3 forwards waiting', () => blocking.requests.length === 3)
  assert.is(value(await samples(metrics), 'webhook_in_flight'), 3)
  release()
  await eventually('3 settled', () => w.settled.length === 3)
  await eventually('gauge back to 0', async () => value(await samples(metrics), 'webhook_in_flight') === 0)
})

Telemetry('logs: dead-lettered events are warnings with event and trace ids, no per-event info lines, the secret never appears', async (ctx) => {
  const { w } = ctx
  const secret = `whsec_${Buffer.from(`TOPSECRET-${Math.random()}`).toString('base64')}`
  const plainSecret = `PLAIN-SECRET-${Math.random().toString(36).slice(2)}`
  const failing = await startReceiver((n) => (n % 2 === 0 ? 503 : 400))
  ctx.receivers.push(failing)
  w.addTool({ id: 'fwd', provider: 'github', processing_mode: 'store_and_forward', secret, forward_url: failing.url, retry_policy: fast })
  w.addTool({ id: 'fwd-plain', provider: 'github', processing_mode: 'store_and_forward', secret: plainSecret,
    forward_url: `http://user:${plainSecret}@127.0.0.1:1/hook`, retry_policy: fast })
  const lines: string[] = []
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done() } })
  const logger = createLogger({ level: 'info', destination })
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const failed = [makeEvent({ tool_id: 'fwd' }), makeEvent({ tool_id: 'fwd' }), makeEvent({ tool_id: 'fwd-plain' })]
  for (const [i, event] of failed.entries()) await w.stream.add(event, { traceparent: `00-${traceId}-00f067aa0ba902b${i}-01` })
  const fine = await w.enqueue(5)
  w.start({ telemetry: { logger } })
  await eventually('8 settled', () => w.settled.length === 8)
  const out = lines.join('\n')
  for (const s of [secret, secret.slice(6), plainSecret]) assert.not.ok(out.includes(s), `secret leaked:\n${out}`)
  const parsed = lines.map((l) => JSON.parse(l) as { level: number; event_id?: string; trace_id?: string; msg: string; code?: string })
  const about = parsed.filter((l) => l.event_id)
  assert.equal(new Set(about.map((l) => l.event_id)), new Set(failed.map((e) => e.id)), 'one line per failed event, none for good ones')
  assert.is(about.length, 3)
  for (const l of about) {
    assert.is(l.level, 40)
    assert.is(l.trace_id, traceId)
    assert.is(l.msg, 'event dead-lettered')
    assert.ok(['DESTINATION_4XX', 'DESTINATION_5XX', 'DESTINATION_UNREACHABLE'].includes(l.code ?? ''), l.code)
  }
  for (const e of fine) assert.not.ok(out.includes(e.id))
  assert.is(parsed.filter((l) => l.level === 30 && l.event_id).length, 0)
})

Telemetry('webhook_dlq_retries_total counts every DLQ status change: re-queued, failed once its last round fails, and discarded', async (ctx) => {
  const { w, metrics } = ctx
  // one round: the event's second failure (round 1) ends its row `failed`
  w.start({ telemetry: { metrics }, dlqPolicy: { delaysMs: [60_000], maxRounds: 1 } })
  const [event] = await w.enqueue(1, { tool_id: 'ghost' })
  const row = async () => w.db.db.selectFrom('webhook_dlq').select(['id', 'status', 'retry_count']).where('event_id', '=', event!.id).executeTakeFirst()
  await eventually('dead-lettered', async () => (await row())?.status === 'pending')
  const dlq = new DlqStore({ db: w.db.db, stream: w.stream, onStatusChange: (change, count) => metrics.dlqRetry(change, count) })
  await dlq.retryOne((await row())!.id, 'test')
  await eventually('failed after its last round', async () => (await row())?.status === 'failed')
  assert.is((await row())?.retry_count, 1)
  await dlq.discard((await row())!.id, 'test')
  const text = await metrics.metricsText()
  const s = parseExposition(text)
  assert.equal(Object.fromEntries(['requeued', 'resolved', 'failed', 'discarded'].map((status) => [status, value(s, 'webhook_dlq_retries_total', { status })])),
    { requeued: 1, resolved: 0, failed: 1, discarded: 1 })
  assert.match(text, /# HELP webhook_dlq_retries_total .*requeued, resolved, failed .*discarded/)
})

Telemetry.run()
