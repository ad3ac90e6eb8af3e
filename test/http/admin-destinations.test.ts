import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import { parseTool } from '../../src/core/tool.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { adminRoutes } from '../../src/http/admin.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const TOKEN = 'admin-token-0123456789abcdef'
const HEADER_VALUE = 'Bearer receiver-token-do-not-leak'

interface Ctx { handle: Db; redis: Redis; registry: ToolRegistry; store: ToolStore; http: RunningHttpServer; bodies: string[] }
const Routes = suite<Ctx>('admin API: destinations', {} as Ctx)

Routes.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  const keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  ctx.store = new ToolStore({ db: ctx.handle.db, encryptionKey: 'a passphrase of sixteen+ chars' })
  ctx.registry = new ToolRegistry({ store: ctx.store, refreshMs: 60_000 })
  ctx.bodies = []
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({
    db: ctx.handle.db, redis: ctx.redis, keys, tools: ctx.registry, toolStore: ctx.store, token: TOKEN,
    stream: new StreamClient({ redis: ctx.redis, stream: keys.stream }),
    staticTools: [parseTool({ id: 'from-yaml', provider: 'gitlab', secret: 'yaml-secret-value', destinations: [{ id: 'y', url: 'https://y.example.test/in' }] })],
  })))
  await ctx.store.upsert(parseTool({ id: 'gh', provider: 'github', secret: 'gh-secret', processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in' }), 'test')
})
Routes.after.each((ctx) => release(ctx, { http: (h) => h.close(), registry: (r) => r.close(), handle: (h) => h.close(), redis: (r) => r.disconnect() }))

async function call(ctx: Ctx, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${ctx.http.url}${path}`, {
    method, headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  ctx.bodies.push(text)
  return { status: res.status, json: text ? JSON.parse(text) : undefined }
}

Routes('POST adds a destination with a generated secret shown once; the list masks it, shows forward_url as "default", and the audit row holds no secret', async (ctx) => {
  const added = await call(ctx, 'POST', '/admin/tools/gh/destinations', {
    id: 'ci', url: 'https://ci.example.test/in', event_types: ['webhook.github.push'], filter: 'ref = "refs/heads/main"', headers: { authorization: HEADER_VALUE },
  })
  assert.is(added.status, 201)
  assert.match(added.json.secret, /^whsec_/)
  assert.is(added.json.destination.secret, '********')
  const stored = await ctx.store.get('gh')
  assert.is(stored!.destinations![0]!.secret, added.json.secret)
  const list = await call(ctx, 'GET', '/admin/tools/gh/destinations')
  assert.equal(list.json.destinations.map((d: { id: string; source: string }) => [d.id, d.source]), [['default', 'forward_url'], ['ci', 'destinations']])
  assert.equal(list.json.destinations[1].headers, { authorization: '********' })
  const again = await call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'ci', url: 'https://ci.example.test/in' })
  assert.is(again.status, 409)
  assert.is(again.json.error.code, 'DESTINATION_EXISTS')
  const audit = await ctx.handle.db.selectFrom('webhook_audit_log').select(['action', 'details']).where(sql<string>`details->>'tool_id'`, '=', 'gh').orderBy('id').execute()
  assert.equal(audit.map((a) => a.action), ['tool_upserted', 'destination_added'])
  const leaked = [added.json.secret, HEADER_VALUE]
  for (const text of [...ctx.bodies.slice(1), JSON.stringify(audit)]) for (const s of leaked) assert.not.ok(text.includes(s), 'no secret echoed after creation')
})

Routes('invalid destinations are refused with 400 DESTINATION_INVALID naming the field, a bad filter with the compiler message', async (ctx) => {
  const cases: [unknown, RegExp][] = [
    [{ id: 'a', url: 'https://a.test', filter: 'action = ' }, /field "filter" does not compile as JSONata/],
    [{ id: 'a', url: 'ftp://a.test' }, /field "url"/],
    [{ id: 'a', url: 'https://a.test', rate_limit: { per_second: -1 } }, /rate_limit\.per_second/],
    [{ id: 'UPPER', url: 'https://a.test' }, /field "id"/],
  ]
  for (const [body, message] of cases) {
    const res = await call(ctx, 'POST', '/admin/tools/gh/destinations', body)
    assert.is(res.status, 400, JSON.stringify(body))
    assert.is(res.json.error.code, 'DESTINATION_INVALID')
    assert.match(res.json.error.message, message)
  }
  assert.is((await ctx.store.get('gh'))!.destinations, undefined)
})

Routes('PATCH disables and enables, PUT of the masked GET body keeps secret and headers, DELETE removes', async (ctx) => {
  const added = await call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'ci', url: 'https://bot:pw@ci.example.test/in', headers: { 'x-key': HEADER_VALUE } })
  assert.is((await call(ctx, 'PATCH', '/admin/tools/gh/destinations/ci', { enabled: false })).json.destination.enabled, false)
  assert.is((await ctx.registry.get('gh'))!.destinations![0]!.enabled, false, 'the registry sees the change at once')
  const shown = (await call(ctx, 'GET', '/admin/tools/gh/destinations/ci')).json.destination
  assert.is(shown.url, 'https://bot:****@ci.example.test/in')
  const put = await call(ctx, 'PUT', '/admin/tools/gh/destinations/ci', { ...shown, source: undefined, enabled: true, timeout: '2s' })
  assert.is(put.status, 200)
  const stored = (await ctx.store.get('gh'))!.destinations![0]!
  assert.equal([stored.enabled, stored.timeoutMs, stored.secret, stored.headers, stored.url], [true, 2000, added.json.secret, { 'x-key': HEADER_VALUE }, 'https://bot:pw@ci.example.test/in'])
  assert.is((await call(ctx, 'DELETE', '/admin/tools/gh/destinations/ci')).status, 204)
  const gone = await call(ctx, 'GET', '/admin/tools/gh/destinations/ci')
  assert.is(gone.status, 404)
  assert.is(gone.json.error.code, 'DESTINATION_NOT_FOUND')
  assert.is((await call(ctx, 'DELETE', '/admin/tools/gh/destinations/ci')).json.error.code, 'DESTINATION_NOT_FOUND')
})

Routes('a webhook URL with its token in the path (Slack) is masked in every response and audit row, and a PUT of the masked URL keeps it', async (ctx) => {
  const token = 'xoxbPathTokenDoNotLeak0123'
  const slack = `https://hooks.slack.com/services/T0A1B2C3D/B0E4F5G6H/${token}`
  const forward = `https://chat.example.test/hooks/catch/1234567/${token.slice(0, 7)}`
  const added = await call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'slack', url: slack })
  assert.is(added.status, 201)
  assert.is(added.json.destination.url, 'https://hooks.slack.com/services/T0A1B2C3D/****/****')
  const tool = await call(ctx, 'PUT', '/admin/tools/gh', { provider: 'github', processing_mode: 'store_and_forward', forward_url: forward })
  assert.is(tool.json.tool.forward_url, 'https://chat.example.test/hooks/catch/****/****')
  const shown = (await call(ctx, 'GET', '/admin/tools/gh/destinations/slack')).json.destination
  assert.is((await call(ctx, 'PUT', '/admin/tools/gh/destinations/slack', { ...shown, source: undefined, timeout: '2s' })).status, 200)
  const listed = await call(ctx, 'GET', '/admin/tools/gh/destinations')
  assert.equal(listed.json.destinations.map((d: { url: string }) => d.url),
    ['https://chat.example.test/hooks/catch/****/****', 'https://hooks.slack.com/services/T0A1B2C3D/****/****'])
  await call(ctx, 'GET', '/admin/tools/gh')
  assert.is((await ctx.store.get('gh'))!.destinations![0]!.url, slack, 'the stored URL is kept whole for sending')
  assert.is((await ctx.store.get('gh'))!.forwardUrl, forward)
  const audit = await ctx.handle.db.selectFrom('webhook_audit_log').select(['details']).where(sql<string>`details->>'tool_id'`, '=', 'gh').execute()
  for (const text of [...ctx.bodies, JSON.stringify(audit)]) {
    assert.not.ok(text.includes(token.slice(0, 7)), `the path token leaked: ${text.slice(0, 300)}`)
    assert.not.ok(text.includes('B0E4F5G6H'))
  }
})

Routes('a masked URL edited before it is sent back (a changed host, a new query) is refused naming the mask, not stored with "****" in it', async (ctx) => {
  const slack = 'https://hooks.slack.com/services/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23'
  assert.is((await call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'slack', url: slack })).status, 201)
  const shown = (await call(ctx, 'GET', '/admin/tools/gh/destinations/slack')).json.destination
  const edited = shown.url.replace('hooks.slack.com', 'hooks.slack-gov.com')
  const put = await call(ctx, 'PUT', '/admin/tools/gh/destinations/slack', { ...shown, source: undefined, url: edited })
  assert.is(put.status, 400)
  assert.is(put.json.error.code, 'DESTINATION_INVALID')
  assert.match(put.json.error.message, /url.*holds the mask "\*\*\*\*"/)
  const added = await call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'copy', url: shown.url })
  assert.is(added.status, 400, 'a masked URL copied to a new destination has nothing to keep')
  const tool = await call(ctx, 'PUT', '/admin/tools/gh', { provider: 'github', processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in?token=****' })
  assert.is(tool.status, 400)
  assert.match(tool.json.error.message, /forward_url.*holds the mask "\*\*\*\*"/)
  assert.is((await ctx.store.get('gh'))!.destinations![0]!.url, slack)
  assert.is((await ctx.store.get('gh'))!.forwardUrl, 'https://fwd.example.test/in')
})

Routes('"default", config-file tools and unknown tools are refused for writes with their own codes', async (ctx) => {
  const def = await call(ctx, 'PATCH', '/admin/tools/gh/destinations/default', { enabled: false })
  assert.equal([def.status, def.json.error.code], [409, 'DESTINATION_READ_ONLY'])
  const yaml = await call(ctx, 'POST', '/admin/tools/from-yaml/destinations', { id: 'z', url: 'https://z.test' })
  assert.equal([yaml.status, yaml.json.error.code], [409, 'TOOL_READ_ONLY'])
  assert.equal((await call(ctx, 'GET', '/admin/tools/from-yaml/destinations')).json.destinations.map((d: { id: string }) => d.id), ['y'])
  const none = await call(ctx, 'GET', '/admin/tools/nope/destinations')
  assert.equal([none.status, none.json.error.code], [404, 'TOOL_NOT_FOUND'])
})

Routes('rotating a destination secret keeps the old one signing until it is retired; neither is echoed', async (ctx) => {
  const added = await call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'ci', url: 'https://ci.example.com/in' })
  const first = added.json.secret as string
  const next = 'whsec_' + Buffer.alloc(32, 3).toString('base64')
  const rotated = await call(ctx, 'POST', '/admin/tools/gh/destinations/ci/secret/rotate', { secret: next, previous_expires_in: '24h' })
  assert.is(rotated.status, 200)
  assert.is(rotated.json.secret, undefined, 'a given secret is not echoed')
  assert.equal([rotated.json.destination.secret, rotated.json.destination.previous_secret], ['********', '********'])
  let d = (await ctx.store.get('gh'))!.destinations![0]!
  assert.equal([d.secret, d.previousSecret], [next, first])
  assert.ok(d.previousSecretExpiresAt! > Date.now() + 23 * 3_600_000)
  assert.is((await call(ctx, 'POST', '/admin/tools/gh/destinations/ci/secret/retire')).status, 200)
  d = (await ctx.store.get('gh'))!.destinations![0]!
  assert.equal([d.secret, d.previousSecret], [next, undefined])
  for (const text of ctx.bodies.slice(1)) assert.not.ok(text.includes(first) || text.includes(next), text)
})

Routes('PUT of a tool with inline destinations generates a secret for each new one without, shown once; a PUT of the GET body keeps them', async (ctx) => {
  const given = 'whsec_' + Buffer.alloc(32, 7).toString('base64')
  const put = await call(ctx, 'PUT', '/admin/tools/inline', { provider: 'github', secret: 'inline-inbound',
    destinations: [{ id: 'a', url: 'https://a.example.test/in' }, { id: 'b', url: 'https://b.example.test/in', secret: given }] })
  assert.is(put.status, 201)
  assert.equal(Object.keys(put.json.destination_secrets), ['a'])
  const generated = put.json.destination_secrets.a as string
  assert.match(generated, /^whsec_/)
  assert.equal(put.json.tool.destinations.map((d: { secret: string }) => d.secret), ['********', '********'])
  const stored = (await ctx.store.get('inline'))!.destinations!
  assert.equal(stored.map((d) => d.secret), [generated, given])
  const shown = await call(ctx, 'GET', '/admin/tools/inline')
  const { source: _source, ...edit } = shown.json.tool
  const again = await call(ctx, 'PUT', '/admin/tools/inline', edit)
  assert.is(again.status, 200)
  assert.is(again.json.destination_secrets, undefined)
  assert.equal((await ctx.store.get('inline'))!.destinations!.map((d) => d.secret), [generated, given])
  for (const text of ctx.bodies.slice(2)) assert.not.ok(text.includes(generated) || text.includes(given), text)
})

// holds the tool row's lock in a transaction of the test until the returned function is called
async function holdToolRow(ctx: Ctx, id: string): Promise<() => Promise<void>> {
  let unlock!: () => void
  let locked!: () => void
  const taken = new Promise<void>((resolve) => { locked = resolve })
  const holder = ctx.handle.db.transaction().execute(async (trx) => {
    await trx.selectFrom('webhook_tools').select('id').where('id', '=', id).forUpdate().execute()
    locked()
    await new Promise<void>((resolve) => { unlock = resolve })
  })
  await taken
  return async () => { unlock(); await holder }
}

async function lockWaiters(ctx: Ctx, count: number): Promise<void> {
  for (;;) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`.execute(ctx.handle.db)
    if ((rows[0]?.n ?? 0) >= count) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

Routes('a tool secret rotation racing a destination change keeps both, neither written from a stale read of the tool', async (ctx) => {
  const release = await holdToolRow(ctx, 'gh')
  const added = call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'ci', url: 'https://ci.example.test/in' })
  await lockWaiters(ctx, 1)
  const rotated = call(ctx, 'POST', '/admin/tools/gh/secret/rotate', { secret: 'gh-secret-2' })
  await lockWaiters(ctx, 2)
  await release()
  assert.equal([(await added).status, (await rotated).status], [201, 200])
  const stored = await ctx.store.get('gh')
  assert.equal(stored!.destinations?.map((d) => d.id), ['ci'], 'the destination added first is still there')
  assert.is(stored!.secret, 'gh-secret-2')
  assert.is(stored!.previousSecret, 'gh-secret')
})

Routes('a PUT of a tool without destinations racing a destination change keeps the destination it did not list', async (ctx) => {
  const release = await holdToolRow(ctx, 'gh')
  const added = call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'ci', url: 'https://ci.example.test/in' })
  await lockWaiters(ctx, 1)
  const replaced = call(ctx, 'PUT', '/admin/tools/gh', { provider: 'github', processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in', enabled: false })
  await lockWaiters(ctx, 2)
  await release()
  assert.equal([(await added).status, (await replaced).status], [201, 200])
  const stored = await ctx.store.get('gh')
  assert.equal([stored!.destinations?.map((d) => d.id), stored!.enabled, stored!.secret], [['ci'], false, 'gh-secret'])
  assert.equal((await replaced).json.tool.destinations?.map((d: { id: string }) => d.id), ['ci'], 'the answer shows what was stored')
})

Routes('a previous_expires_in beyond any date is 400 naming the field, not a 500, and changes nothing', async (ctx) => {
  await call(ctx, 'POST', '/admin/tools/gh/destinations', { id: 'ci', url: 'https://ci.example.test/in' })
  for (const path of ['/admin/tools/gh/secret/rotate', '/admin/tools/gh/forward-secret/rotate', '/admin/tools/gh/destinations/ci/secret/rotate']) {
    const res = await call(ctx, 'POST', path, { secret: 'whsec_bmV4dC1zZWNyZXQtb2YtMTYtYnl0ZXM=', previous_expires_in: '100000000000d' })
    assert.equal([res.status, res.json.error.code], [400, 'TOOL_INVALID'], `${path}: ${JSON.stringify(res.json)}`)
    assert.match(res.json.error.message, /previous_expires_in/)
  }
  assert.is((await ctx.store.get('gh'))!.secret, 'gh-secret')
})

Routes('a forward signing secret equal to the inbound secret is refused through the API as in a config file, and nothing is stored', async (ctx) => {
  // its receivers would hold the key that signs inbound webhooks, and could forge them
  const same = 'whsec_c2FtZS1zZWNyZXQtZm9yLWJvdGgtd2F5cw=='
  const cases: [string, string, unknown][] = [
    ['PUT', '/admin/tools/gh', { provider: 'github', secret: same, processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in', forward_secret: same }],
    ['POST', '/admin/tools/gh/destinations', { id: 'ci', url: 'https://ci.example.test/in', secret: 'gh-secret' }],
    ['POST', '/admin/tools/gh/forward-secret/rotate', { secret: 'gh-secret' }],
  ]
  for (const [method, path, body] of cases) {
    const res = await call(ctx, method, path, body)
    assert.equal([res.status, res.json?.error?.code], [400, 'TOOL_INVALID'], `${method} ${path}: ${JSON.stringify(res.json)}`)
    assert.match(res.json.error.message, /inbound secret/)
    assert.not.ok(JSON.stringify(res.json).includes(same) || JSON.stringify(res.json).includes('gh-secret'), 'the secret is not echoed')
  }
  const stored = await ctx.store.get('gh')
  assert.equal([stored!.secret, stored!.forwardSecret, stored!.destinations], ['gh-secret', undefined, undefined])
})

Routes.run()
