import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { Kysely, PostgresDialect, type PostgresPool } from 'kysely'
import pg from 'pg'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import type { StreamEvent } from '../../src/core/event.js'
import type { Database } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { webhookPipeline, type WebhookEnvelope } from '../../src/pipelines/webhook.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { startReceiver, type Receiver } from '../helpers/pipeline.js'
import { sharedRedis, startPostgres, type TestPostgres } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

/** Pauses the first statement matching `match` (before it runs, or after it returned) while `hit` runs. */
interface Gate { match: RegExp; after: boolean; armed: boolean; hit: () => Promise<void> }

// a pg pool whose clients stop at the gate: the worker's batch is deterministically at that stage when the test
// stops PostgreSQL, with no sleeps
function gatedPool(url: string, gate: Gate): PostgresPool {
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 500 })
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  return {
    options: pool.options,
    async connect() {
      const client = await pool.connect()
      return {
        query: (async (sql: string, params: unknown[]) => {
          const stop = gate.armed && gate.match.test(sql)
          if (stop) gate.armed = false
          if (stop && !gate.after) await gate.hit()
          const result = await client.query(sql, params)
          if (stop && gate.after) await gate.hit()
          return result
        }) as never,
        release: (destroy?: boolean) => client.release(destroy),
      }
    },
    end: () => pool.end(),
  }
}

interface Ctx { pg: TestPostgres; redis: Redis; receiver: Receiver }
const Stages = suite<Ctx>('PostgreSQL stopped while a batch is at each worker stage', {} as Ctx)
Stages.before(async (ctx) => {
  ctx.pg = await startPostgres()
  ctx.redis = new Redis((await sharedRedis()).url, { maxRetriesPerRequest: null })
  ctx.receiver = await startReceiver()
})
Stages.after((ctx) => release(ctx, { redis: (r) => r.disconnect(), receiver: (r) => r.close(), pg: (p) => p.stop() }))

interface Stage {
  readonly name: string
  readonly gate: Omit<Gate, 'armed' | 'hit'>
  readonly tool: 'store' | 'forward' | 'missing'
  /** Rows to write before the worker starts (already stored, or DLQ rows being retried). */
  readonly prepare?: (db: Kysely<Database>, events: StreamEvent[]) => Promise<void>
  readonly retryCount?: number
  /** Whether the batch settles while PostgreSQL is still down (its fate was durable before the stop). */
  readonly settlesWhileDown?: boolean
  readonly check: (db: Kysely<Database>, events: StreamEvent[], ctx: Ctx, forwardedBefore: number) => Promise<void>
}

const storedRows = (db: Kysely<Database>) => db.selectFrom('webhook_events').select(['tool_id', 'id', 'forwarded_at']).execute()
const preStore = async (db: Kysely<Database>, events: StreamEvent[]) => {
  await db.insertInto('webhook_events').values(events.map((e) => ({
    id: e.id, tool_id: e.tool_id, tenant_id: e.tenant_id, event_type: e.event_type, repository: e.repository,
    payload: JSON.stringify(e.payload), stream_id: '1-0', received_at: e.timestamp,
  }))).execute()
}

const stages: Stage[] = [
  { name: 'store (the INSERT)', gate: { match: /^insert into "webhook_events"/, after: false }, tool: 'store',
    check: async (db, events) => { assert.is((await storedRows(db)).length, events.length) } },
  { name: 'store_and_forward\'s "already forwarded?" SELECT', gate: { match: /^select "tool_id", "id" from "webhook_events"/, after: false }, tool: 'forward',
    prepare: preStore,
    check: async (db, events, ctx, before) => {
      const rows = await storedRows(db)
      assert.equal([rows.length, rows.filter((r) => r.forwarded_at).length], [events.length, events.length])
      assert.is(ctx.receiver.requests.length - before, events.length, 'each forwarded once')
    } },
  { name: 'markForwarded', gate: { match: /^update "webhook_events" set "forwarded_at"/, after: false }, tool: 'forward',
    check: async (db, events, ctx, before) => {
      assert.is((await storedRows(db)).filter((r) => r.forwarded_at).length, events.length)
      assert.is(ctx.receiver.requests.length - before, events.length, 'each forwarded once')
    } },
  { name: 'resolveDLQ', gate: { match: /^update "webhook_dlq" set "status"/, after: false }, tool: 'store', retryCount: 1,
    prepare: async (db, events) => {
      await db.insertInto('webhook_dlq').values(events.map((e) => ({
        event_id: e.id, tool_id: e.tool_id, event: JSON.stringify(e), error: 'x', error_class: 'permanent', status: 'retrying' as const, retry_count: 1,
      }))).execute()
    },
    check: async (db, events) => {
      assert.is((await storedRows(db)).length, events.length)
      const dlq = await db.selectFrom('webhook_dlq').select('status').execute()
      assert.equal(dlq.map((d) => d.status), events.map(() => 'resolved'))
    } },
  { name: 'toDLQ', gate: { match: /^insert into "webhook_dlq"/, after: false }, tool: 'missing',
    check: async (db, events) => {
      const dlq = await db.selectFrom('webhook_dlq').select(['event_id', 'status']).execute()
      assert.equal(dlq.map((d) => d.event_id).sort(), events.map((e) => e.id).sort())
    } },
  { name: 'settle (the rows committed, PostgreSQL gone before the ack)', gate: { match: /^insert into "webhook_events"/, after: true }, tool: 'store',
    settlesWhileDown: true,
    check: async (db, events) => { assert.is((await storedRows(db)).length, events.length) } },
]

for (const stage of stages) {
  Stages(`at ${stage.name}: the worker holds, then finishes every event exactly once when PostgreSQL is back`, async (ctx) => {
    const url = await ctx.pg.createDatabase()
    let stopped = false
    let restarted = false
    const gate: Gate = { ...stage.gate, armed: false, hit: async () => { await ctx.pg.stop(); stopped = true } }
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: gatedPool(url, gate) }) })
    const keys = streamKeys({ prefix: `stage-${randomUUID()}:` })
    const stream = new StreamClient({ redis: ctx.redis, stream: keys.stream })
    const tools = new Map<string, ToolConfig>([
      ['store', parseTool({ id: 'store', provider: 'github', secret: 's3cret-value' })],
      ['forward', parseTool({ id: 'forward', provider: 'github', secret: 's3cret-value', processing_mode: 'store_and_forward', forward_url: ctx.receiver.url })],
    ])
    const forwardSink = new ForwardSink({ timeoutMs: 2000 })
    const abort = new AbortController()
    const settled: WebhookEnvelope[] = []
    const holds: boolean[] = []
    try {
      await migrateToLatest(db)
      const events = Array.from({ length: 5 }, () => makeEvent({ tool_id: stage.tool, retry_count: stage.retryCount ?? 0 }))
      await stage.prepare?.(db, events)
      await stream.addMany(events)
      const forwardedBefore = ctx.receiver.requests.length
      gate.armed = true
      const sub = webhookPipeline({
        redis: ctx.redis, db, keys, forwardSink, consumer: 'stages', blockMs: 100, signal: abort.signal,
        tools: { get: async (id) => tools.get(id) }, onHold: (held) => holds.push(held),
      }).subscribe((env) => settled.push(env))
      try {
        await eventually('PostgreSQL stopped at the stage', () => stopped, 20_000)
        if (stage.settlesWhileDown) {
          await eventually('settled while PostgreSQL is down', () => settled.length === events.length, 20_000)
        } else {
          await eventually('the worker holds', () => holds.includes(true), 20_000)
          assert.is(settled.length, 0, 'nothing settled while PostgreSQL is down')
        }
        await ctx.pg.start()
        restarted = true
        await eventually('every event settled', () => settled.length === events.length, 30_000)
        const perEvent = new Map<string, number>()
        for (const env of settled) perEvent.set(env.message.event.id, (perEvent.get(env.message.event.id) ?? 0) + 1)
        assert.equal([...perEvent.values()], events.map(() => 1), 'each event settled exactly once')
        // checked over a connection of its own: the worker's pool may still hold a connection the stop cut, whose
        // error the event loop has not read yet when the batch settled in the same turn the INSERT returned
        const verify = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) })
        try {
          await stage.check(verify, events, ctx, forwardedBefore)
        } finally {
          await verify.destroy()
        }
        await eventually('nothing pending', async () => (await stream.info()).groups.find((g) => g.name === keys.group)?.pending === 0)
      } finally {
        abort.abort()
        sub.unsubscribe()
      }
    } finally {
      if (stopped && !restarted) await ctx.pg.start()
      await forwardSink.close()
      await db.destroy()
    }
  })
}

Stages.run()
