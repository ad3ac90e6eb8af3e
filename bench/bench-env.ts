import { Redis } from 'ioredis'
import pg from 'pg'
import { sql } from 'kysely'
import { createDb, type Db } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { streamKeys } from '../src/sources/keys.js'
import { StreamClient } from '../src/sources/stream-client.js'
import { startPostgres, startRedis, type TestPostgres, type TestRedis } from '../test/helpers/servers.js'
import type { ScenarioContext } from './define-scenario.js'
import { makeEvents, type PayloadKind } from './payloads.js'
import { drainSource } from './scenarios/drain-source.js'

/** Servers and connections shared by every run of one `npm run bench`. */
export interface BenchEnv {
  readonly redis: Redis
  readonly redisUrl: string
  readonly pool: pg.Pool
  readonly db: Db
  readonly databaseUrl: string
  /** Where the servers came from, for the report. */
  readonly servers: string
  close(): Promise<void>
}

/**
 * Starts its own redis-server and PostgreSQL (or uses REDIS_URL / DATABASE_URL), creates a fresh database
 * `hookstream_bench_<time>` and migrates it.
 */
export async function openBenchEnv(): Promise<BenchEnv> {
  let ownRedis: TestRedis | undefined
  let ownPg: TestPostgres | undefined
  const redisUrl = process.env.REDIS_URL ?? (ownRedis = await startRedis()).url
  const adminUrl = process.env.DATABASE_URL ?? (ownPg = await startPostgres()).url
  const dbName = `hookstream_bench_${Date.now().toString(36)}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE "${dbName}"`)
  await admin.end()
  const u = new URL(adminUrl)
  u.pathname = `/${dbName}`
  const databaseUrl = u.toString()
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null })
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 50 })
  const db = await createDb({ url: databaseUrl, poolSize: 20 })
  await migrateToLatest(db.db)
  let closing: Promise<void> | undefined
  return {
    redis, redisUrl, pool, db, databaseUrl,
    servers: `${ownRedis ? 'own redis-server' : 'REDIS_URL'}, ${ownPg ? 'own PostgreSQL' : 'DATABASE_URL'} (database ${dbName})`,
    close: () => (closing ??= (async () => {
      for (const step of [() => pool.end(), () => db.close(), () => redis.quit()]) await step().catch(() => undefined)
      if (ownPg) await ownPg.stop()
      else {
        const c = new pg.Client({ connectionString: adminUrl })
        await c.connect().then(() => c.query(`DROP DATABASE IF EXISTS "${dbName}"`)).catch(() => undefined).finally(() => c.end())
      }
      await ownRedis?.stop()
    })()),
  }
}

let runCounter = 0

/** A fresh context for one run: new key prefix and stream, TRUNCATEd table, this run's data. */
export async function prepareRun(env: BenchEnv, options: { events: number; payload: PayloadKind; durationSeconds?: number; progress: (n: number) => void }): Promise<ScenarioContext> {
  const runId = `${process.pid.toString(36)}${Date.now().toString(36)}r${runCounter++}`
  const keyPrefix = `bench:${runId}:`
  const keys = streamKeys({ prefix: keyPrefix })
  await sql`TRUNCATE webhook_events`.execute(env.db.db)
  let data: ReturnType<typeof makeEvents> | undefined
  const ctx: ScenarioContext = {
    redis: env.redis, redisUrl: env.redisUrl, pool: env.pool, db: env.db.db, databaseUrl: env.databaseUrl,
    events: options.events, payload: options.payload, keys,
    ...(options.durationSeconds !== undefined ? { durationSeconds: options.durationSeconds } : {}), keyPrefix, group: keys.group, state: {},
    data: () => (data ??= makeEvents(options.payload, options.events, `${runId}-`)),
    async preload() {
      const client = new StreamClient({ redis: env.redis, stream: keys.stream })
      const chunk = 1000
      // chunks made on the fly (a million-event backlog is never held in memory); two pipelines in flight
      // keep Redis busy while the next chunk is serialized
      let inFlight: Promise<unknown> = Promise.resolve()
      for (let i = 0; i < options.events; i += chunk) {
        const part = data ? data.slice(i, i + chunk) : makeEvents(options.payload, Math.min(chunk, options.events - i), `${runId}-`, i)
        const next = client.addMany(part)
        await inFlight
        inFlight = next
      }
      await inFlight
    },
    async drain(drainOptions = {}) {
      const { settled, drained } = await drainSource({
        redis: env.redis, stream: keys.stream, group: keys.group, events: options.events,
        batchSize: drainOptions.batchSize ?? 500, onProgress: options.progress,
        ...(drainOptions.chain ? { chain: drainOptions.chain } : {}),
      })
      if (!drained) throw new Error('drain: the source closed with messages still unsettled')
      return { settled }
    },
    progress: options.progress,
  }
  return ctx
}

/** Deletes every Redis key of the run (its stream, idempotency keys, BullMQ keys). */
export async function cleanupRun(env: BenchEnv, ctx: ScenarioContext): Promise<void> {
  let cursor = '0'
  do {
    const [next, found] = (await env.redis.call('SCAN', cursor, 'MATCH', `${ctx.keyPrefix}*`, 'COUNT', 5000)) as [string, string[]]
    cursor = next
    if (found.length > 0) await env.redis.call('UNLINK', ...found)
  } while (cursor !== '0')
}
