import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { startDlqRetryWorker } from '../../src/pipelines/dlq-retry.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { parseExposition, sampleTotal } from '../observability/exposition.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { seedDlq, streamEvents } from '../db/dlq-seed.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, startReceiver, type PipelineWorld } from '../helpers/pipeline.js'
import { freePort, sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld }
const Worker = suite<Ctx>('DLQ retry worker', {} as Ctx)

Worker.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
})
Worker.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

async function actions(w: PipelineWorld, eventId: string): Promise<string[]> {
  const rows = await w.db.db.selectFrom('webhook_audit_log').select('action').where('event_id', '=', eventId).orderBy('id').execute()
  return rows.map((r) => r.action)
}

Worker('two workers started at once on the same 60 due rows re-queue each row exactly once', async ({ w }) => {
  const rows = await seedDlq(w.db, Array.from({ length: 60 }, () => ({})))
  await seedDlq(w.db, [{ status: 'failed' }, { status: 'resolved' }])
  const requeued: number[] = []
  const workers = [1, 2].map(() => startDlqRetryWorker({ db: w.db.db, stream: w.stream, batchSize: 7, intervalMs: 20, onRequeued: (n) => requeued.push(n) }))
  try {
    await eventually('60 re-queued', async () => (await w.redis.xlen(w.keys.stream)) >= 60)
    await new Promise((r) => setTimeout(r, 150)) // more rounds run; none may re-queue again
  } finally {
    await Promise.all(workers.map((x) => x.close()))
  }
  const events = await streamEvents(w.redis, w.keys.stream)
  assert.is(events.length, 60)
  assert.equal(new Set(events.map((e) => e.id)), new Set(rows.map((r) => r.event.id)))
  assert.ok(events.every((e) => e.retry_count === 1 && e.metadata !== undefined))
  const audits = await w.db.db.selectFrom('webhook_audit_log').select('event_id').where('action', '=', 'dlq_requeued').execute()
  assert.is(audits.length, 60)
  assert.is(requeued.reduce((a, b) => a + b, 0), 60)
  const statuses = await w.db.db.selectFrom('webhook_dlq').select('status').execute()
  assert.equal(statuses.map((s) => s.status).sort(), [...Array(1).fill('failed'), ...Array(1).fill('resolved'), ...Array(60).fill('retrying')].sort())
})

Worker('a flaky destination: dead-lettered, re-queued by the worker, forwarded, and the DLQ row ends resolved', async ({ w }) => {
  const receiver = await startReceiver((n) => (n === 1 ? 400 : 200))
  const policy = { delaysMs: [50], maxRounds: 3 }
  const worker = startDlqRetryWorker({ db: w.db.db, stream: w.stream, policy, intervalMs: 25 })
  try {
    w.addTool({ id: 'flaky', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url })
    const [event] = await w.enqueue(1, { tool_id: 'flaky', auth_context: { provider: 'github', scheme: 'hmac-sha256' } })
    w.start({ dlqPolicy: policy })
    await eventually('DLQ row resolved', async () =>
      (await w.db.db.selectFrom('webhook_dlq').select('status').executeTakeFirst())?.status === 'resolved')
    // the row is resolved just before the re-queued event is settled
    await eventually('re-queued event settled', () => w.settled.length === 2)
    const row = await w.db.db.selectFrom('webhook_dlq').selectAll().executeTakeFirstOrThrow()
    assert.equal([row.event_id, row.retry_count], [event!.id, 1])
    assert.ok(row.resolved_at)
    assert.equal(await actions(w, event!.id), ['dead_lettered', 'dlq_requeued', 'dlq_resolved'])
    assert.is(receiver.requests.length, 2)
    assert.equal(JSON.parse(receiver.requests[1]!.body).id, event!.id)
    const stored = await w.db.db.selectFrom('webhook_events').selectAll().execute()
    assert.is(stored.length, 1)
    assert.ok(stored[0]!.forwarded_at)
    assert.equal(w.settled.map((e) => [e.message.event.retry_count, e.outcome]), [[0, 'dead_lettered'], [1, 'forwarded']])
    assert.equal(w.settled[1]!.message.event.auth_context, { provider: 'github', scheme: 'hmac-sha256' })
  } finally {
    await worker.close()
    await receiver.close()
  }
})

Worker('after maxRounds re-queues that fail again the row ends failed and is not re-queued any more', async ({ w }) => {
  const receiver = await startReceiver(() => 400)
  const policy = { delaysMs: [30], maxRounds: 2 }
  const worker = startDlqRetryWorker({ db: w.db.db, stream: w.stream, policy, intervalMs: 20 })
  try {
    w.addTool({ id: 'broken', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url })
    const [event] = await w.enqueue(1, { tool_id: 'broken' })
    w.start({ dlqPolicy: policy })
    await eventually('DLQ row failed', async () =>
      (await w.db.db.selectFrom('webhook_dlq').select('status').executeTakeFirst())?.status === 'failed')
    await new Promise((r) => setTimeout(r, 200))
    const rows = await w.db.db.selectFrom('webhook_dlq').selectAll().execute()
    assert.equal(rows.map((r) => [r.status, r.retry_count, r.next_retry_at]), [['failed', 2, null]])
    assert.equal(await actions(w, event!.id), ['dead_lettered', 'dlq_requeued', 'dead_lettered', 'dlq_requeued', 'dead_lettered'])
    assert.is(receiver.requests.length, 3)
  } finally {
    await worker.close()
    await receiver.close()
  }
})

Worker('due rows whose retry count already reached maxRounds are marked failed instead of re-queued', async ({ w }) => {
  await seedDlq(w.db, [{ retry_count: 3 }, { retry_count: 1 }])
  const worker = startDlqRetryWorker({ db: w.db.db, stream: w.stream, policy: { delaysMs: [10], maxRounds: 3 }, intervalMs: 10_000 })
  await worker.close()
  const rows = await w.db.db.selectFrom('webhook_dlq').select(['status', 'retry_count']).orderBy('id').execute()
  assert.equal(rows.map((r) => [r.status, r.retry_count]), [['failed', 3], ['retrying', 2]])
  assert.is(await w.redis.xlen(w.keys.stream), 1)
})

Worker('with Redis down a round rolls back: rows stay pending, the error is reported, the next round works', async ({ w }) => {
  await seedDlq(w.db, [{}, {}])
  const down = new Redis({ port: await freePort(), lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  down.on('error', () => {})
  const errors: string[] = []
  try {
    const broken = startDlqRetryWorker({ db: w.db.db, stream: new StreamClient({ redis: down, stream: w.keys.stream }), intervalMs: 10_000,
      onError: (err) => errors.push((err as { code?: string }).code ?? err.message) })
    await broken.runOnce()
    await broken.close()
    assert.equal(errors, ['REDIS_UNAVAILABLE'])
    const statuses = await w.db.db.selectFrom('webhook_dlq').select('status').execute()
    assert.equal(statuses.map((s) => s.status), ['pending', 'pending'])
    const worker = startDlqRetryWorker({ db: w.db.db, stream: w.stream, intervalMs: 10_000 })
    assert.is(await worker.runOnce(), 2)
    await worker.close()
    assert.is(await w.redis.xlen(w.keys.stream), 2)
  } finally {
    down.disconnect()
  }
})

Worker('retention deletes old resolved and discarded rows and trims the DLQ stream by age and length', async ({ w }) => {
  const rows = await seedDlq(w.db, [{ status: 'resolved' }, { status: 'discarded' }, { status: 'resolved' }, { status: 'failed' }])
  await w.db.db.updateTable('webhook_dlq').set({ updated_at: new Date(Date.now() - 2 * 3_600_000) })
    .where('id', 'in', [rows[0]!.id, rows[1]!.id, rows[3]!.id]).execute()
  const old = Date.now() - 2 * 3_600_000
  for (let i = 0; i < 5; i++) await w.redis.xadd(w.keys.dlqStream, `${old}-${i}`, 'event', '{}')
  for (let i = 0; i < 300; i++) await w.redis.xadd(w.keys.dlqStream, '*', 'event', '{}')
  const first = startDlqRetryWorker({ db: w.db.db, stream: w.stream, retentionMs: 3_600_000, intervalMs: 10_000,
    dlqStream: { redis: w.redis, dlqStream: w.keys.dlqStream } })
  await first.runOnce()
  await first.close()
  const left = await w.db.db.selectFrom('webhook_dlq').select('id').orderBy('id').execute()
  assert.equal(left.map((r) => r.id), [rows[2]!.id, rows[3]!.id])
  const entries = (await w.redis.xrange(w.keys.dlqStream, '-', '+')) as [string, string[]][]
  assert.is(entries.length, 300, 'only the 5 entries older than the retention are gone')
  const second = startDlqRetryWorker({ db: w.db.db, stream: w.stream, intervalMs: 10_000,
    dlqStream: { redis: w.redis, dlqStream: w.keys.dlqStream, maxLen: 100 } })
  await second.runOnce()
  await second.close()
  const len = await w.redis.xlen(w.keys.dlqStream)
  assert.ok(len >= 100 && len < 300, `MAXLEN ~ 100 left ${len}`)
})

Worker('close() is idempotent and rejects bad options by name', async ({ w }) => {
  const worker = startDlqRetryWorker({ db: w.db.db, stream: w.stream })
  const a = worker.close()
  assert.is(worker.close(), a)
  await a
  for (const [opts, name] of [[{ intervalMs: 0 }, 'intervalMs'], [{ batchSize: 1.5 }, 'batchSize'], [{ retentionMs: -1 }, 'retentionMs']] as const) {
    try {
      startDlqRetryWorker({ db: w.db.db, stream: w.stream, ...opts })
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, new RegExp(`"${name}"`))
    }
  }
})

Worker('its rounds report every status change to webhook_dlq_retries_total: due rows requeued, undecodable and used-up rows failed', async ({ w }) => {
  const metrics = createMetrics({ defaultMetrics: false })
  await seedDlq(w.db, [{}, {}, { undecodable: true }, { retry_count: 3 }, { status: 'failed' }])
  const worker = startDlqRetryWorker({ db: w.db.db, stream: w.stream, intervalMs: 20, policy: { delaysMs: [60_000], maxRounds: 3 },
    onStatusChange: (change, count) => metrics.dlqRetry(change, count) })
  try {
    await eventually('every due row handled', async () =>
      (await w.db.db.selectFrom('webhook_dlq').select('id').where('status', '=', 'pending').execute()).length === 0)
    await worker.runOnce()
    const s = parseExposition(await metrics.metricsText())
    assert.equal(Object.fromEntries(['requeued', 'resolved', 'failed', 'discarded'].map((status) => [status, sampleTotal(s, 'webhook_dlq_retries_total', { status })])),
      { requeued: 2, resolved: 0, failed: 2, discarded: 0 })
  } finally {
    await worker.close()
    metrics.close()
  }
})

Worker.run()
