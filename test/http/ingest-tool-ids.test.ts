import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { createIngestHandler } from '../../src/http/ingest.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'

/** The real store over the test database, counting every query the registry makes through it. */
class CountingToolStore extends ToolStore {
  queries = 0
  override list(onBadRow?: (id: string, err: unknown) => void): Promise<ToolConfig[]> {
    this.queries++
    return super.list(onBadRow)
  }

  override get(id: string): Promise<ToolConfig | undefined> {
    this.queries++
    return super.get(id)
  }
}

interface Ctx { handle?: Db; redis?: Redis; store?: CountingToolStore; registry?: ToolRegistry; http?: RunningHttpServer }
const Ids = suite<Ctx>('ingest: tool ids are checked by shape, and unknown ones cost no database query', {})

Ids.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url, { maxRetriesPerRequest: 1 })
  const keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  ctx.store = new CountingToolStore({ db: ctx.handle.db })
  await ctx.store.upsert(parseTool({ id: 'gh', provider: 'github', secret: 'gh-secret' }), 'test')
  ctx.registry = new ToolRegistry({ store: ctx.store, refreshMs: 60_000 })
  const ingest = createIngestHandler({ tools: ctx.registry, stream: new StreamClient({ redis: ctx.redis, stream: keys.stream }), redis: ctx.redis, keys })
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter([{ method: 'POST', path: '/webhooks/:toolId', handler: ingest }]))
})
Ids.after.each((ctx) => release(ctx, { http: (h) => h.close(), registry: (r) => r.close(), handle: (h) => h.close(), redis: (r) => r.disconnect() }))

const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
const headers = () => ({
  'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
  'x-hub-signature-256': `sha256=${createHmac('sha256', 'gh-secret').update(body).digest('hex')}`,
})

async function post(http: RunningHttpServer, encodedId: string): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${http.url}/webhooks/${encodedId}`, { method: 'POST', body, headers: headers() })
  const json = await res.json() as { error?: { code: string } }
  return { status: res.status, ...(json.error ? { code: json.error.code } : {}) }
}

Ids('an id that is not 1–128 letters, digits, ".", "_" or "-" is 404 UNKNOWN_TOOL before any lookup: a NUL byte is not a 503', async ({ http, store }) => {
  assert.equal(await post(http!, 'gh'), { status: 202 })
  const queriesBefore = store!.queries
  for (const id of ['a%00b', '%00', 'x'.repeat(129), 'a%20b', 'a%2Fb', '%C3%A9t%C3%A9', '.hidden', 'a%0Ab']) {
    assert.equal(await post(http!, id), { status: 404, code: 'UNKNOWN_TOOL' }, id)
  }
  assert.is(store!.queries - queriesBefore, 0, 'no query for an id of the wrong shape')
  assert.equal(await post(http!, 'x'.repeat(128)), { status: 404, code: 'UNKNOWN_TOOL' })
})

Ids('1,000 distinct random unknown ids are each 404 UNKNOWN_TOOL and cost no database query once the tool list is loaded', async ({ http, store }) => {
  assert.equal(await post(http!, 'gh'), { status: 202 })
  const queriesBefore = store!.queries
  const ids = Array.from({ length: 1000 }, () => randomBytes(12).toString('hex'))
  const answers: { status: number; code?: string }[] = []
  // 20 senders at a time: enough to overlap, few enough for a shared box
  for (let i = 0; i < ids.length; i += 20) answers.push(...await Promise.all(ids.slice(i, i + 20).map((id) => post(http!, id))))
  assert.is(answers.filter((a) => a.status === 404 && a.code === 'UNKNOWN_TOOL').length, 1000)
  assert.is(store!.queries - queriesBefore, 0, `${store!.queries - queriesBefore} store queries for 1,000 unknown ids`)
  assert.equal(await post(http!, 'gh'), { status: 202 }, 'the known tool is still served')
})

Ids('a tool saved through this process shows at once (refresh), and one deleted is unknown at once', async ({ http, store, registry }) => {
  assert.equal(await post(http!, 'late'), { status: 404, code: 'UNKNOWN_TOOL' })
  await store!.upsert(parseTool({ id: 'late', provider: 'github', secret: 'gh-secret' }), 'test')
  await registry!.refresh()
  assert.equal(await post(http!, 'late'), { status: 202 })
  await store!.remove('late', 'test')
  await registry!.refresh()
  assert.equal(await post(http!, 'late'), { status: 404, code: 'UNKNOWN_TOOL' })
})

Ids.run()
