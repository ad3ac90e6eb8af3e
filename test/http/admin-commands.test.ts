import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { adminRoutes } from '../../src/http/admin.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { appWithDeadLetters, waitUntil } from '../commands/command-helpers.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const TOKEN = 'admin-token-0123456789abcdef'
interface Ctx { db: Db; redis: Redis; http: RunningHttpServer; stream: string }
const Routes = suite<Ctx>('admin API: /admin/commands/dlq', {} as Ctx)
Routes.before.each(async (ctx) => {
  ctx.db = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 2 })
  await migrateToLatest(ctx.db.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  ctx.stream = `cmds-${randomUUID()}`
  const keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({
    db: ctx.db.db, redis: ctx.redis, keys, token: TOKEN, stream: new StreamClient({ redis: ctx.redis, stream: keys.stream }),
    tools: { refresh: async () => {} }, toolStore: { list: async () => [], get: async () => undefined, upsert: async () => { throw new Error('unused') }, replace: async () => { throw new Error('unused') }, modify: async () => undefined, remove: async () => false, changeDestinations: async () => undefined },
    commandLog: { redis: ctx.redis, stream: ctx.stream },
  })))
})
Routes.after.each((ctx) => release(ctx, { http: (h) => h.close(), db: (d) => d.close(), redis: (r) => r.disconnect() }))

async function call(ctx: Ctx, method: string, path: string, token = TOKEN): Promise<{ status: number; json: any }> {
  const res = await fetch(`${ctx.http.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, json: await res.json() }
}

Routes('lists, shows, retries for the failed worker and discards command dead letters; a wrong token is 401; unknown ids are 404/400', async (ctx) => {
  const { app, broken, seen } = await appWithDeadLetters(ctx.redis, ctx.stream, 2)
  try {
    const list = await call(ctx, 'GET', '/admin/commands/dlq?worker=billing')
    assert.is(list.status, 200)
    assert.is(list.json.entries.length, 2)
    const [newest, oldest] = list.json.entries as { id: string }[]
    assert.equal((await call(ctx, 'GET', `/admin/commands/dlq/${oldest!.id}`)).json.entry.payload, '{"n":1}')
    broken.on = false
    const retried = await call(ctx, 'POST', `/admin/commands/dlq/${oldest!.id}/retry`)
    assert.equal([retried.status, retried.json.retried.worker], [200, 'billing'])
    await waitUntil('billing handled the re-driven command', () => seen.billing.length === 1)
    const discarded = await call(ctx, 'POST', `/admin/commands/dlq/${newest!.id}/discard`)
    assert.equal([discarded.status, discarded.json.discarded.id], [200, newest!.id])
    assert.equal((await call(ctx, 'GET', '/admin/commands/dlq')).json, { entries: [], next_cursor: null })
    const gone = await call(ctx, 'POST', `/admin/commands/dlq/${newest!.id}/retry`)
    assert.equal([gone.status, gone.json.error.code], [404, 'COMMAND_DLQ_NOT_FOUND'])
    const bad = await call(ctx, 'GET', '/admin/commands/dlq/x1')
    assert.equal([bad.status, bad.json.error.code], [400, 'COMMAND_DLQ_ID_INVALID'])
    assert.match(bad.json.error.message, /see GET \/admin\/commands\/dlq/)
    const badLimit = await call(ctx, 'GET', '/admin/commands/dlq?limit=0')
    assert.equal([badLimit.status, badLimit.json.error.code], [400, 'COMMAND_DLQ_QUERY_INVALID'])
    assert.is((await call(ctx, 'GET', '/admin/commands/dlq', 'wrong-token-0123456789')).status, 401)
  } finally {
    await app.stop()
  }
})

Routes.run()
