import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { createDb, type Db } from '../../src/db/database.js'
import { EventStore } from '../../src/db/event-store.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { adminRoutes } from '../../src/http/admin.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { seedDlq } from '../db/dlq-seed.js'
import { makeEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'
import { freePort, sharedPostgres, sharedRedis } from '../helpers/servers.js'

const TOKEN = 'overview-token-0123456789abcdef'

interface Ctx { handle: Db; redis: Redis; registry: ToolRegistry; http: RunningHttpServer; keys: StreamKeys }
const Overview = suite<Ctx>('GET /admin/overview and the event content route', {} as Ctx)

Overview.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  ctx.keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  const store = new ToolStore({ db: ctx.handle.db })
  ctx.registry = new ToolRegistry({ store, refreshMs: 60_000 })
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({
    db: ctx.handle.db, redis: ctx.redis, keys: ctx.keys, tools: ctx.registry, toolStore: store, token: TOKEN,
    stream: new StreamClient({ redis: ctx.redis, stream: ctx.keys.stream }),
  })))
})
Overview.after.each((ctx) => release(ctx, { http: (h) => h.close(), registry: (r) => r.close(), handle: (h) => h.close(), redis: (r) => r.disconnect() }))

async function get(ctx: Ctx, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${ctx.http.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  return { status: res.status, body: await res.json() }
}

Overview('the overview counts the queue, the open dead letters and the events of the last minute', async (ctx) => {
  const { stream, group } = ctx.keys
  await ctx.redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM')
  for (let i = 0; i < 3; i++) await ctx.redis.xadd(stream, '*', 'event', JSON.stringify(makeEvent()))
  await ctx.redis.xreadgroup('GROUP', group, 'worker-1', 'COUNT', 2, 'STREAMS', stream, '>')
  const store = new EventStore({ db: ctx.handle.db })
  const row = (at: Date) => {
    const e = makeEvent({ tool_id: 'gh' })
    return { id: e.id, tool_id: 'gh', tenant_id: e.tenant_id, event_type: e.event_type, repository: e.repository, payload: e.payload, stream_id: '1-0', received_at: at.toISOString() }
  }
  // three events in the last minute (two tools), one ten minutes ago that the rate leaves out
  await store.write([row(new Date()), row(new Date()), { ...row(new Date()), tool_id: 'gl' }, row(new Date(Date.now() - 600_000))])
  await seedDlq(ctx.handle, [{}, { status: 'failed' }, { status: 'discarded' }, { failed_at: new Date(Date.now() - 600_000).toISOString() }])

  const { status, body } = await get(ctx, '/admin/overview')
  assert.is(status, 200)
  assert.equal({ depth: body.queue.depth, lag: body.queue.lag, pending: body.queue.pending, consumers: body.queue.consumers }, { depth: 3, lag: 1, pending: 2, consumers: 1 })
  assert.ok(body.queue.oldest_pending_age_seconds >= 0 && body.queue.oldest_pending_age_seconds < 60, `oldest pending age ${body.queue.oldest_pending_age_seconds}`)
  assert.equal(body.dlq, { pending: 2, retrying: 0, resolved: 0, failed: 1, discarded: 1, open: 3 })
  assert.is(body.rates.window_seconds, 60)
  assert.is(body.rates.stored_per_second, 3 / 60)
  assert.is(body.rates.dead_lettered_per_second, 3 / 60)
})

Overview('the oldest pending age grows with the age of the oldest unacked entry, and an empty queue reads as zeros', async (ctx) => {
  const empty = await get(ctx, '/admin/overview')
  assert.equal(empty.body.queue, { stream: ctx.keys.stream, group: ctx.keys.group, depth: 0, lag: 0, pending: 0, oldest_pending_age_seconds: 0, consumers: 0 })
  const { stream, group } = ctx.keys
  await ctx.redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM')
  // an entry id carries its time: one written "90 s ago" is 90 s old once it is pending
  await ctx.redis.xadd(stream, `${Date.now() - 90_000}-0`, 'event', JSON.stringify(makeEvent()))
  await ctx.redis.xreadgroup('GROUP', group, 'worker-1', 'COUNT', 1, 'STREAMS', stream, '>')
  const { body } = await get(ctx, '/admin/overview')
  assert.ok(body.queue.oldest_pending_age_seconds >= 90 && body.queue.oldest_pending_age_seconds < 150, `oldest pending age ${body.queue.oldest_pending_age_seconds}`)
})

Overview('with Redis unreachable the overview answers 503 REDIS_UNAVAILABLE with Retry-After, not a 500', async (ctx) => {
  const port = await freePort()
  const dead = new Redis({ port, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  dead.on('error', () => {})
  const store = new ToolStore({ db: ctx.handle.db })
  const http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({
    db: ctx.handle.db, redis: dead, keys: ctx.keys, tools: ctx.registry, toolStore: store, token: TOKEN,
    stream: new StreamClient({ redis: dead, stream: ctx.keys.stream }),
  })))
  try {
    const res = await fetch(`${http.url}/admin/overview`, { headers: { authorization: `Bearer ${TOKEN}` } })
    const body = await res.json() as { error: { code: string; message: string } }
    assert.equal([res.status, body.error.code, res.headers.get('retry-after')], [503, 'REDIS_UNAVAILABLE', '5'])
    assert.match(body.error.message, /REDIS_URL/)
  } finally {
    await http.close()
    dead.disconnect()
  }
})

Overview('an event\'s content shows its payload and kept headers, never a credential header', async (ctx) => {
  const [dead] = await seedDlq(ctx.handle, [{ event: { tool_id: 'gh', metadata: { headers: {
    'x-github-event': 'push', authorization: 'Bearer sender-token', 'x-hub-signature-256': 'sha256=abc', cookie: 'a=b', 'x-shop-token': 't0ken',
  } } } }])
  const { status, body } = await get(ctx, `/admin/tools/gh/events/${dead!.event.id}/content`)
  assert.is(status, 200)
  assert.equal(body, { payload: dead!.event.payload, transformed: null, headers: { 'x-github-event': 'push' } })
  assert.not.match(JSON.stringify(body), /sender-token|sha256=abc|t0ken/)
  const other = await get(ctx, `/admin/tools/gl/events/${dead!.event.id}/content`)
  assert.is(other.status, 404)
  assert.is(other.body.error.code, 'EVENT_NOT_FOUND')
})

Overview.run()
