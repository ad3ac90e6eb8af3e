import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import pg from 'pg'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { startServiceProcess } from '../helpers/service-process.js'
import { release } from '../helpers/release.js'

interface Ctx { redis: Redis; db: Db; databaseUrl: string; env: Record<string, string>; stream: StreamClient }
const Run = suite<Ctx>('hookstream run with the seed settings', {} as Ctx)
Run.before.each(async (ctx) => {
  const redisUrl = (await sharedRedis()).url
  ctx.databaseUrl = await (await sharedPostgres()).createDatabase()
  const prefix = `seed-${randomUUID()}:`
  ctx.env = { REDIS_URL: redisUrl, DATABASE_URL: ctx.databaseUrl, STREAM_PREFIX: prefix, WORKER_CONSUMER_NAME: 'seed-worker', WORKER_BLOCK_TIMEOUT: '200ms' }
  ctx.redis = new Redis(redisUrl)
  ctx.db = await createDb({ url: ctx.databaseUrl })
  await migrateToLatest(ctx.db.db)
  ctx.stream = new StreamClient({ redis: ctx.redis, stream: streamKeys({ prefix }).stream })
})
Run.after.each((ctx) => release(ctx, { redis: (r) => r.disconnect(), db: (d) => d.close() }))

const TOOLS = 'tools:\n  - { id: store-tool, provider: github, secret: s3cret-value, tenant_id: acme }\n'

Run('the worker fails a store stuck behind a lock after WORKER_PROCESSING_TIMEOUT and dead-letters it on the DLQ_RETRY_SCHEDULE', async (ctx) => {
  const locker = new pg.Client({ connectionString: ctx.databaseUrl })
  await locker.connect()
  const svc = await startServiceProcess({ ...ctx.env, WORKER_PROCESSING_TIMEOUT: '500ms', DLQ_RETRY_SCHEDULE: '2h,3h' }, TOOLS, ['--role', 'worker'])
  try {
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE')
    await ctx.stream.addMany(Array.from({ length: 3 }, () => makeEvent({ tool_id: 'store-tool' })))
    await eventually('3 dead letters', async () => (await ctx.db.db.selectFrom('webhook_dlq').select('id').execute()).length === 3, 20_000)
    const rows = await ctx.db.db.selectFrom('webhook_dlq').select(['error_code', 'status', 'failed_at', 'next_retry_at']).execute()
    for (const row of rows) {
      assert.equal([row.error_code, row.status], ['PROCESSING_TIMEOUT', 'pending'])
      const waitMs = new Date(row.next_retry_at as Date).getTime() - new Date(row.failed_at).getTime()
      assert.ok(Math.abs(waitMs - 2 * 3_600_000) < 60_000, `first re-queue after 2h (DLQ_RETRY_SCHEDULE); got ${waitMs} ms`)
    }
    await eventually('nothing pending', async () => ((await ctx.stream.info()).groups[0]?.pending ?? -1) === 0)
  } finally {
    await locker.query('ROLLBACK').catch(() => {})
    await locker.end()
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0, svc.output())
})

Run('GET /health has the seed\'s details per component: connections and query time, ping time, queue depth and lag, runtime memory and event loop', async (ctx) => {
  // ingest only: nothing reads the group, so the entries added here are its lag
  await ctx.stream.ensureGroup(streamKeys({ prefix: ctx.env.STREAM_PREFIX }).group)
  await ctx.stream.addMany(Array.from({ length: 5 }, () => makeEvent({ tool_id: 'store-tool' })))
  const svc = await startServiceProcess(ctx.env, TOOLS, ['--role', 'ingest'])
  try {
    const res = await fetch(`${svc.healthUrl}/health`)
    assert.is(res.status, 200)
    const { components } = await res.json() as { components: Record<string, { status: string; details: Record<string, any> }> }
    const { database, redis, queue, worker } = components as Record<string, { status: string; details: Record<string, any> }>
    assert.ok(database!.details.open_connections >= 1, JSON.stringify(database))
    assert.type(database!.details.query_duration_ms, 'number')
    assert.type(redis!.details.ping_duration_ms, 'number')
    assert.equal([queue!.details.queue_depth, queue!.details.consumer_lag, queue!.details.pending], [5, 5, 0])
    const runtime = worker!.details.runtime
    assert.ok(runtime.memory.rss_bytes > 0 && runtime.memory.heap_used_bytes > 0, JSON.stringify(runtime))
    assert.type(runtime.event_loop.lag_ms, 'number')
    assert.ok(runtime.event_loop.utilization >= 0 && runtime.event_loop.utilization <= 1)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0, svc.output())
})

Run.run()
