import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Envelope } from '../../src/core/envelope.js'
import { PipelineError } from '../../src/core/errors.js'
import type { StreamEvent } from '../../src/core/event.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { runWorker, type ProcessContext, type RunWorkerOptions } from '../../src/pipelines/run-worker.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'
import { within } from '../helpers/time-limit.js'

interface Ctx { redis: Redis; db: Db }
const RunWorker = suite<Ctx>('runWorker', {} as Ctx)
RunWorker.before(async (ctx) => {
  ctx.redis = new Redis((await sharedRedis()).url, { maxRetriesPerRequest: null })
  ctx.db = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.db.db)
})
RunWorker.after((ctx) => release(ctx, { redis: (r) => r.disconnect(), db: (d) => d.close() }))

const fastRetries = { maxRetries: 2, initialIntervalMs: 20, maxIntervalMs: 50, multiplier: 2, maxElapsedMs: 60_000 }

async function world(ctx: Ctx) {
  const keys: StreamKeys = streamKeys({ prefix: `rw-${randomUUID()}:` })
  const stream = new StreamClient({ redis: ctx.redis, stream: keys.stream })
  const settled: Envelope[] = []
  const start = (process: RunWorkerOptions['process'], extra: Partial<RunWorkerOptions> = {}) => runWorker({
    redis: ctx.redis, db: ctx.db.db, keys, consumer: 'c1', blockMs: 100, retryPolicy: fastRetries,
    onSettled: (env) => settled.push(env), process, ...extra,
  })
  const pending = async () => (await stream.info()).groups.find((g) => g.name === keys.group)?.pending ?? 0
  const dlqRows = async (ids: string[]) => ctx.db.db.selectFrom('webhook_dlq').select(['event_id', 'error_code', 'status'])
    .where('event_id', 'in', ids).execute()
  return { keys, stream, settled, start, pending, dlqRows }
}

RunWorker('every event reaches the process function once and is acked; a later copy of a processed id is settled as a duplicate', async (ctx) => {
  const w = await world(ctx)
  const seen: string[] = []
  const events = Array.from({ length: 30 }, () => makeEvent())
  await w.stream.addMany(events)
  const worker = w.start(async (event) => { seen.push(event.id) })
  await eventually('30 settled', () => w.settled.length === 30)
  await w.stream.addMany([events[0] as StreamEvent])
  await eventually('31 settled', () => w.settled.length === 31)
  assert.is(await worker.close().then((r) => r.drained), true)
  assert.is(seen.length, 30)
  assert.is(new Set(seen).size, 30)
  assert.is(w.settled.filter((e) => e.outcome === 'processed').length, 30)
  assert.is(w.settled.filter((e) => e.outcome === 'duplicate').length, 1)
  assert.is(await w.pending(), 0)
})

RunWorker('a thrown error is retried by the policy and then dead-lettered; a permanent PipelineError is dead-lettered at once', async (ctx) => {
  const w = await world(ctx)
  const [flaky, broken, permanent] = [makeEvent(), makeEvent(), makeEvent()] as [StreamEvent, StreamEvent, StreamEvent]
  await w.stream.addMany([flaky, broken, permanent])
  const calls = new Map<string, number>()
  const worker = w.start(async (event, ctx: ProcessContext) => {
    calls.set(event.id, (calls.get(event.id) ?? 0) + 1)
    if (event.id === flaky.id && ctx.attempt < 2) throw new Error('flaky downstream')
    if (event.id === broken.id) throw new Error('always down')
    if (event.id === permanent.id) throw new PipelineError('permanent', 'BAD_INPUT', 'cannot ever work')
  })
  await eventually('3 settled', () => w.settled.length === 3)
  await worker.close()
  assert.equal([calls.get(flaky.id), calls.get(broken.id), calls.get(permanent.id)], [3, 3, 1])
  const byId = new Map(w.settled.map((e) => [e.message.event.id, e]))
  assert.is(byId.get(flaky.id)?.outcome, 'processed')
  assert.is(byId.get(broken.id)?.outcome, 'dead_lettered')
  assert.is(byId.get(broken.id)?.failure?.code, 'PROCESS_FAILED')
  assert.is(byId.get(permanent.id)?.failure?.code, 'BAD_INPUT')
  const rows = await w.dlqRows([flaky.id, broken.id, permanent.id])
  assert.equal(rows.map((r) => r.error_code).sort(), ['BAD_INPUT', 'PROCESS_FAILED'])
  assert.is(Number(await ctx.redis.xlen(w.keys.dlqStream)), 2)
  assert.is(await w.pending(), 0)
})

RunWorker('a step that never resolves fails with PROCESSING_TIMEOUT after its retries, is dead-lettered, and frees its slot for the next events', async (ctx) => {
  const w = await world(ctx)
  const hung = makeEvent()
  const others = Array.from({ length: 5 }, () => makeEvent())
  await w.stream.addMany([hung, ...others])
  const aborted: number[] = []
  const worker = w.start(async (event, pctx) => {
    if (event.id !== hung.id) return
    pctx.signal.addEventListener('abort', () => aborted.push(pctx.attempt))
    await new Promise(() => {})
  }, { concurrency: 1, processingTimeoutMs: 150 })
  await eventually('6 settled', () => w.settled.length === 6)
  const closed = await worker.close()
  assert.is(closed.drained, true)
  const hungEnv = w.settled.find((e) => e.message.event.id === hung.id)
  assert.is(hungEnv?.outcome, 'dead_lettered')
  assert.is(hungEnv?.failure?.code, 'PROCESSING_TIMEOUT')
  assert.is(hungEnv?.failure?.kind, 'transient')
  assert.equal(aborted, [0, 1, 2])
  assert.is(w.settled.filter((e) => e.outcome === 'processed').length, 5)
  const rows = await w.dlqRows([hung.id])
  assert.equal(rows.map((r) => [r.error_code, r.status]), [['PROCESSING_TIMEOUT', 'pending']])
  assert.is(await w.pending(), 0)
})

RunWorker('close() resolves after drainTimeoutMs with drained false while an event is still being processed; the entry stays pending for redelivery', async (ctx) => {
  const w = await world(ctx)
  const slow = makeEvent()
  await w.stream.addMany([slow])
  let started = false
  let finish: () => void = () => {}
  const gate = new Promise<void>((resolve) => { finish = resolve })
  const worker = w.start(async () => { started = true; await gate }, { drainTimeoutMs: 200, processingTimeoutMs: 120_000 })
  await eventually('process called', () => started)
  // close() must not wait for the process function (120 s here): only for the drain timeout
  const closed = await within(worker.close(), 15_000)
  finish()
  assert.equal(closed, { drained: false })
  assert.equal(await within(worker.done, 1000), { drained: false })
  assert.is(w.settled.length, 0)
  assert.is(await w.pending(), 1)
  assert.equal(await w.dlqRows([slow.id]), [])
})

RunWorker('options are checked when the worker is built', async (ctx) => {
  const w = await world(ctx)
  try {
    w.start(async () => {}, { processingTimeoutMs: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"timeoutMs" must be an integer from 1/)
  }
  try {
    runWorker({ redis: ctx.redis, db: ctx.db.db, consumer: 'c', process: undefined as never })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"process" must be an async function/)
  }
})

RunWorker.run()
