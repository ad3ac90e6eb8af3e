import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql } from 'kysely'
import { Redis } from 'ioredis'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import type { AdminOptions } from '../../src/http/admin.js'
import { replayRoutes } from '../../src/http/admin-replay.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { DEFAULT_KEYS } from '../../src/sources/keys.js'
import { eventually } from '../helpers/events.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

interface Ctx { handle: Db; redis: Redis; http: RunningHttpServer; open: () => void }
const Routes = suite<Ctx>('admin API: /admin/replays', {} as Ctx)

Routes.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 8 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  await ctx.handle.db.insertInto('webhook_events').values({
    id: 'd-1', tool_id: 'gh', tenant_id: 'acme', event_type: 'webhook.github.push', repository: 'acme/api',
    payload: '{"n":1}', stream_id: '1-0', received_at: new Date().toISOString(),
  }).execute()
  // a replay's sending waits until the test opens the gate, so the first replay is still running
  const gate = new Promise<void>((resolve) => { ctx.open = resolve })
  const options = { db: ctx.handle.db, redis: ctx.redis, keys: DEFAULT_KEYS } as unknown as AdminOptions
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(replayRoutes(options, {
    send: async (events) => { await gate; return events.length }, maxRunning: 1,
  }, 1 << 20)))
})
Routes.after.each((ctx) => { ctx.open(); return release(ctx, { http: (h) => h.close(), handle: (h) => h.close(), redis: (r) => r.disconnect() }) })

async function post(ctx: Ctx, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${ctx.http.url}/admin/replays`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, json: await res.json() }
}

Routes('replays asked for at once never run more than maxRunning: the others are refused with 429 REPLAY_BUSY', async (ctx) => {
  // hold every request that gets to count until all three are either counting or answered, so each one reaches the
  // busy check while the others are in flight and none has started sending
  let unlock: () => void = () => {}
  const unlocked = new Promise<void>((resolve) => { unlock = resolve })
  let lockTaken: () => void = () => {}
  const taken = new Promise<void>((resolve) => { lockTaken = resolve })
  const holder = ctx.handle.db.transaction().execute(async (trx) => {
    await sql`LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE`.execute(trx)
    lockTaken()
    await unlocked
  })
  let results: { status: number; json: any }[]
  try {
    await taken
    let answered = 0
    const answers = Promise.all([1, 2, 3].map(() => post(ctx, { tool: 'gh' }).finally(() => { answered += 1 })))
    await eventually('each request is counting or answered', async () => {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`.execute(ctx.handle.db)
      return (rows[0]?.n ?? 0) + answered === 3
    })
    unlock()
    results = await answers
  } finally {
    unlock()
    await holder
  }
  assert.equal(results.map((r) => r.status).sort(), [202, 429, 429])
  assert.equal(results.filter((r) => r.status === 429).map((r) => r.json.error.code), ['REPLAY_BUSY', 'REPLAY_BUSY'])
  const id = results.find((r) => r.status === 202)?.json.replay.id as string
  ctx.open()
  await eventually('the replay finished', async () => {
    const res = await fetch(`${ctx.http.url}/admin/replays/${id}`)
    return ((await res.json()) as { replay: { status: string } }).replay.status === 'done'
  })
  assert.is((await post(ctx, { tool: 'gh' })).status, 202, 'a finished replay frees its place')
})

Routes.run()
