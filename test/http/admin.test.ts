import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { StreamEvent } from '../../src/core/event.js'
import { parseTool } from '../../src/core/tool.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { adminRoutes } from '../../src/http/admin.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { parseExposition, sampleTotal } from '../observability/exposition.js'
import { idempotencyKey, streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { StreamPartitions } from '../../src/sources/partitions.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { seedDlq, streamEvents } from '../db/dlq-seed.js'
import { makeEvent } from '../helpers/events.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const TOKEN = 'admin-token-0123456789abcdef'
const SECRET = 'gh-signing-secret-do-not-leak'

interface Ctx {
  handle: Db; redis: Redis; keys: StreamKeys; registry: ToolRegistry; store: ToolStore
  http: RunningHttpServer; off: RunningHttpServer; bodies: string[]; logs: string[]
}
const Admin = suite<Ctx>('admin API', {} as Ctx)

Admin.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  ctx.keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  ctx.store = new ToolStore({ db: ctx.handle.db, encryptionKey: 'a passphrase of sixteen+ chars' })
  ctx.registry = new ToolRegistry({ store: ctx.store, refreshMs: 60_000 })
  ctx.bodies = []
  ctx.logs = []
  const options = {
    db: ctx.handle.db, redis: ctx.redis, keys: ctx.keys, tools: ctx.registry, toolStore: ctx.store,
    stream: new StreamClient({ redis: ctx.redis, stream: ctx.keys.stream }),
    staticTools: [parseTool({ id: 'from-yaml', provider: 'gitlab', secret: 'yaml-secret-value' })],
    logger: { info: (o: object, m: string) => ctx.logs.push(`${JSON.stringify(o)} ${m}`), warn: (o: object, m: string) => ctx.logs.push(`${JSON.stringify(o)} ${m}`) },
  }
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({ ...options, token: TOKEN })))
  ctx.off = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes(options)))
})
Admin.after.each((ctx) => release(ctx, {
  http: (h) => h.close(), off: (h) => h.close(), registry: (r) => r.close(), handle: (h) => h.close(), redis: (r) => r.disconnect(),
}))

async function call(ctx: Ctx, method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; json: any }> {
  const res = await fetch(`${ctx.http.url}${path}`, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  ctx.bodies.push(text)
  return { status: res.status, json: text ? JSON.parse(text) : undefined }
}

Admin('without a token every admin route answers 404, even with an Authorization header', async (ctx) => {
  for (const [method, path] of [['GET', '/admin/tools'], ['PUT', '/admin/tools/x'], ['GET', '/admin/dlq'], ['POST', '/admin/dlq/1/retry'], ['GET', '/admin/events/e']]) {
    const res = await fetch(`${ctx.off.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } })
    assert.is(res.status, 404, `${method} ${path}`)
    assert.is(((await res.json()) as { error: { code: string } }).error.code, 'NOT_FOUND')
  }
})

Admin('without a token an admin path answers 404 to every method, like an unknown path: no 405, no Allow naming methods', async (ctx) => {
  for (const path of ['/admin/tools/x', '/admin/tools', '/admin/dlq/1/retry', '/admin/tools/x/secret/rotate']) {
    for (const method of ['GET', 'PUT', 'POST', 'PATCH', 'DELETE']) {
      const res = await fetch(`${ctx.off.url}${path}`, { method })
      assert.is(res.status, 404, `${method} ${path}`)
      assert.is(res.headers.get('allow'), null, `${method} ${path}`)
      const body = (await res.json()) as { error: { code: string; message: string } }
      assert.equal(body.error, { code: 'NOT_FOUND', message: `no route for ${method} ${path}` })
    }
  }
})

Admin('a missing or wrong token gets 401 without echoing it; the right token works', async (ctx) => {
  for (const token of [null, 'wrong-token-wrong-token', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
    const res = await call(ctx, 'GET', '/admin/tools', undefined, token)
    assert.is(res.status, 401)
    assert.is(res.json.error.code, 'ADMIN_UNAUTHORIZED')
  }
  const basic = await fetch(`${ctx.http.url}/admin/tools`, { headers: { authorization: `Basic ${TOKEN}` } })
  assert.is(basic.status, 401)
  assert.is((await call(ctx, 'GET', '/admin/tools')).status, 200)
  assert.ok(ctx.bodies.every((b) => !b.includes(TOKEN) && !b.includes('wrong-token')))
})

Admin('no admin answer may be stored by a cache: a generated secret, a tool list, a 401 and a 404 all say Cache-Control: no-store', async (ctx) => {
  const send = (method: string, path: string, body?: unknown, token: string | null = TOKEN) => fetch(`${ctx.http.url}${path}`, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const created = await send('PUT', '/admin/tools/fwd', { provider: 'github', secret: SECRET, processing_mode: 'store_and_forward', forward_url: 'http://127.0.0.1:9/hook' })
  const secret = (await created.clone().json() as { forward_secret?: string }).forward_secret
  assert.match(String(secret), /^whsec_/, 'the answer carries a generated signing secret')
  const added = await send('POST', '/admin/tools/fwd/destinations', { id: 'ci', url: 'http://127.0.0.1:9/ci' })
  assert.match(String((await added.clone().json() as { secret?: string }).secret), /^whsec_/)
  for (const res of [created, added, await send('GET', '/admin/tools'), await send('GET', '/admin/tools/fwd/destinations'), await send('GET', '/admin/tools', undefined, 'wrong-token-0123456789'),
    await send('GET', '/admin/tools/nope'), await send('GET', '/admin/dlq?limit=0')]) {
    assert.is(res.headers.get('cache-control'), 'no-store', `${res.url} ${res.status}`)
    assert.is(res.headers.get('x-content-type-options'), 'nosniff', `${res.url} ${res.status}`)
    await res.body?.cancel()
  }
})

Admin('tool CRUD: create, show, replace keeping the secret, delete; the registry sees each change at once; secrets never leak', async (ctx) => {
  const created = await call(ctx, 'PUT', '/admin/tools/gh-main', { provider: 'github', secret: SECRET, tenant_id: 'acme', processing_mode: 'store', max_body: '1MiB' })
  assert.is(created.status, 201)
  assert.equal([created.json.created, created.json.tool.secret, created.json.tool.tenant_id], [true, '********', 'acme'])
  assert.is((await ctx.registry.get('gh-main'))?.tenantId, 'acme')
  const shown = await call(ctx, 'GET', '/admin/tools/gh-main')
  assert.equal([shown.json.tool.id, shown.json.tool.source, shown.json.tool.secret, shown.json.tool.max_body], ['gh-main', 'store', '********', '1MiB'])
  assert.is((await ctx.registry.get('gh-main'))?.maxBodyBytes, 1024 * 1024)
  const list = await call(ctx, 'GET', '/admin/tools')
  assert.equal(list.json.tools.map((t: { id: string; source: string }) => [t.id, t.source]), [['from-yaml', 'config'], ['gh-main', 'store']])
  // a GET → edit → PUT round trip (masked secret, `source`) keeps the stored secret
  const replaced = await call(ctx, 'PUT', '/admin/tools/gh-main', { ...shown.json.tool, processing_mode: 'store_and_forward', forward_url: 'http://127.0.0.1:9/hook' })
  assert.equal([replaced.status, replaced.json.created], [200, false])
  const noSecret = await call(ctx, 'PUT', '/admin/tools/gh-main', { provider: 'github', tenant_id: 'beta' })
  assert.is(noSecret.status, 200)
  assert.is((await ctx.store.get('gh-main'))?.secret, SECRET)
  const seen = await ctx.registry.get('gh-main')
  assert.equal([seen?.tenantId, seen?.secret, seen?.processingMode], ['beta', SECRET, 'store'])
  const deleted = await fetch(`${ctx.http.url}/admin/tools/gh-main`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  assert.is(deleted.status, 204)
  assert.is(await ctx.registry.get('gh-main'), undefined)
  assert.is((await call(ctx, 'GET', '/admin/tools/gh-main')).json.error.code, 'TOOL_NOT_FOUND')
  assert.is((await call(ctx, 'DELETE', '/admin/tools/gh-main')).status, 404)
  assert.equal(await call(ctx, 'DELETE', '/admin/tools/from-yaml').then((r) => [r.status, r.json.error.code]), [409, 'TOOL_READ_ONLY'])
  const audit = await ctx.handle.db.selectFrom('webhook_audit_log').select(['action', 'actor', 'details']).where('entity', '=', 'tool').orderBy('id').execute()
  assert.equal(audit.map((a) => [a.action, a.actor]), [['tool_upserted', 'admin-api'], ['tool_upserted', 'admin-api'], ['tool_upserted', 'admin-api'], ['tool_deleted', 'admin-api']])
  assert.ok(!JSON.stringify(audit).includes(SECRET))
  assert.ok(ctx.logs.length >= 4)
  for (const text of [...ctx.bodies, ...ctx.logs]) assert.ok(!text.includes(SECRET) && !text.includes('yaml-secret-value'), text)
})

Admin('with a bad row inserted by SQL, a PUT and a DELETE of another tool through the API still take effect', async (ctx) => {
  await ctx.handle.db.insertInto('webhook_tools').values({ id: 'bad-row', provider: 'svn', secret: 'x', tenant_id: 'acme', processing_mode: 'store',
    forward_url: null, transform: null, retry_policy: JSON.stringify({}), signature: null, enabled: true }).execute()
  assert.is((await call(ctx, 'PUT', '/admin/tools/t2', { provider: 'github', secret: 'first-secret-value' })).status, 201)
  assert.is((await ctx.registry.get('t2'))?.secret, 'first-secret-value')
  assert.is((await call(ctx, 'PUT', '/admin/tools/t2', { provider: 'github', secret: 'rotated-secret-value' })).status, 200)
  assert.is((await ctx.registry.get('t2'))?.secret, 'rotated-secret-value')
  assert.is((await call(ctx, 'DELETE', '/admin/tools/t2')).status, 204)
  assert.is(await ctx.registry.get('t2'), undefined)
  assert.equal([...ctx.registry.unreadable.keys()], ['bad-row'])
})

Admin('a stored row that no longer parses leaves GET /admin/tools listing every other tool, and the row is named in the log', async (ctx) => {
  await ctx.store.upsert(parseTool({ id: 'good', provider: 'github', secret: 'good-secret-value' }), 'test')
  // as an upgrade that tightens validation, or a key mix-up, leaves a row behind
  await ctx.handle.db.insertInto('webhook_tools').values({ id: 'bad-row', provider: 'svn', secret: 'x', tenant_id: 'acme', processing_mode: 'store',
    forward_url: null, transform: null, retry_policy: JSON.stringify({}), signature: null, enabled: true }).execute()
  const list = await call(ctx, 'GET', '/admin/tools')
  assert.is(list.status, 200, JSON.stringify(list.json))
  assert.equal(list.json.tools.map((t: { id: string; source: string }) => [t.id, t.source]), [['from-yaml', 'config'], ['good', 'store']])
  assert.ok(ctx.logs.some((line) => line.includes('bad-row') && line.includes('cannot be read')), ctx.logs.join('\n'))
  const one = await call(ctx, 'GET', '/admin/tools/bad-row')
  assert.equal([one.status, one.json.error.code], [400, 'TOOL_INVALID'])
  assert.match(one.json.error.message, /bad-row/)
})

Admin('a PUT replaces a stored row that no longer parses, as the TOOL_UNREADABLE message tells the operator to do', async (ctx) => {
  await ctx.handle.db.insertInto('webhook_tools').values({ id: 'bad-row', provider: 'svn', secret: 'x', tenant_id: 'acme', processing_mode: 'store',
    forward_url: null, transform: null, retry_policy: JSON.stringify({}), signature: null, enabled: true }).execute()
  await ctx.registry.refresh()
  assert.equal([...ctx.registry.unreadable.keys()], ['bad-row'])
  const fixed = await call(ctx, 'PUT', '/admin/tools/bad-row', { provider: 'github', secret: 'repaired-secret-value' })
  assert.is(fixed.status, 200, JSON.stringify(fixed.json))
  assert.equal([(await ctx.registry.get('bad-row'))?.provider, ctx.registry.unreadable.size], ['github', 0])
  assert.is((await ctx.store.get('bad-row'))?.secret, 'repaired-secret-value')
})

Admin('invalid tools get 400 naming the field; bad JSON and id mismatches too', async (ctx) => {
  const cases: [unknown, string, RegExp][] = [
    [{ provider: 'svn', secret: 'x' }, 'TOOL_INVALID', /field "provider"/],
    [{ provider: 'github' }, 'TOOL_INVALID', /field "secret" is required/],
    [{ provider: 'github', secret: 'x', processing_mode: 'store_and_forward' }, 'TOOL_INVALID', /field "forward_url"/],
    [{ provider: 'github', secret: 'x', retry_policy: { max_retries: -1 } }, 'TOOL_INVALID', /retry_policy\.max_retries/],
    [{ provider: 'github', secret: 'x', colour: 'red' }, 'TOOL_INVALID', /unknown field\(s\) "colour"/],
    [{ provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { n: '$count(' } }, 'TOOL_INVALID',
      /field "transform\.n" does not compile as JSONata: .+/],
    [{ provider: 'github', secret: 'x', transform_timeout: '1h' }, 'TOOL_INVALID', /field "transform_timeout"/],
    [{ provider: 'github', secret: 'x', max_body: '10 parsecs' }, 'TOOL_INVALID', /field "max_body" must be a size from 1KiB to 1GiB/],
    [{ provider: 'github', secret: 'x', max_body: '2GiB' }, 'TOOL_INVALID', /field "max_body"/],
    [{ id: 'other', provider: 'github', secret: 'x' }, 'TOOL_ID_MISMATCH', /differs/],
    [{ provider: 'github', secret: '********' }, 'TOOL_INVALID', /mask/],
    ['{"provider": ', 'INVALID_JSON', /not valid JSON/],
    ['[1]', 'INVALID_JSON', /JSON object/],
  ]
  for (const [body, code, message] of cases) {
    const res = await call(ctx, 'PUT', '/admin/tools/t1', body)
    assert.equal([res.status, res.json.error.code], [400, code], JSON.stringify(body))
    assert.match(res.json.error.message, message)
  }
  assert.is((await ctx.store.list()).length, 0)
})

Admin('DLQ list: filters and cursor pages over 25 rows with limit 10', async (ctx) => {
  await seedDlq(ctx.handle, Array.from({ length: 25 }, (_, i) => ({ event: { tool_id: i < 15 ? 'gh' : 'gl' }, status: i % 5 === 0 ? 'failed' as const : 'pending' as const })))
  const seen: number[] = []
  let path = '/admin/dlq?limit=10'
  const sizes: number[] = []
  for (;;) {
    const page = await call(ctx, 'GET', path)
    assert.is(page.status, 200)
    sizes.push(page.json.entries.length)
    seen.push(...page.json.entries.map((e: { id: number }) => e.id))
    if (!page.json.next_cursor) break
    path = `/admin/dlq?limit=10&cursor=${encodeURIComponent(page.json.next_cursor)}`
  }
  assert.equal(sizes, [10, 10, 5])
  assert.is(new Set(seen).size, 25)
  assert.is((await call(ctx, 'GET', '/admin/dlq?tool=gl&limit=100')).json.entries.length, 10)
  assert.is((await call(ctx, 'GET', '/admin/dlq?status=failed')).json.entries.length, 5)
  assert.is((await call(ctx, 'GET', '/admin/dlq?status=failed&tool=gh&event_type=webhook.github.push')).json.entries.length, 3)
  assert.is((await call(ctx, 'GET', `/admin/dlq?from=${new Date(Date.now() + 60_000).toISOString()}`)).json.entries.length, 0)
  const entry = (await call(ctx, 'GET', '/admin/dlq?limit=1')).json.entries[0]
  assert.equal(Object.keys(entry).sort(), ['error', 'error_class', 'error_code', 'event_format', 'event_id', 'event_type', 'failed_at', 'id', 'next_retry_at',
    'resolved_at', 'retry_count', 'status', 'tool_id', 'undecodable', 'updated_at'])
  for (const [path2, code] of [['/admin/dlq?status=open', 'DLQ_FILTER_INVALID'], ['/admin/dlq?limit=0', 'DLQ_FILTER_INVALID'],
    ['/admin/dlq?cursor=zzz', 'DLQ_CURSOR_INVALID'], ['/admin/dlq?from=yesterday', 'DLQ_FILTER_INVALID'], ['/admin/dlq/abc', 'DLQ_ID_INVALID']] as const) {
    const res = await call(ctx, 'GET', path2)
    assert.equal([res.status, res.json.error.code], [400, code], path2)
  }
})

Admin('a DLQ filter time PostgreSQL cannot hold is a 400 naming the field, on list and on retry by filter, not a 500', async (ctx) => {
  await seedDlq(ctx.handle, [{}])
  for (const at of ['-200000-01-01T00:00:00Z', '-004714-01-01T00:00:00Z']) {
    const list = await call(ctx, 'GET', `/admin/dlq?from=${encodeURIComponent(at)}`)
    assert.equal([list.status, list.json.error?.code], [400, 'DLQ_FILTER_INVALID'], at)
    assert.match(list.json.error.message, /"from"/)
    const retry = await call(ctx, 'POST', '/admin/dlq/retry', { to: at })
    assert.equal([retry.status, retry.json.error?.code], [400, 'DLQ_FILTER_INVALID'], at)
  }
  assert.is(await ctx.redis.xlen(ctx.keys.stream), 0, 'nothing was re-queued')
})

Admin('a forged event search cursor (impossible time, year 0, NUL in an id) is a 400 EVENT_CURSOR_INVALID, not a 500', async (ctx) => {
  const forged = (...parts: string[]) => Buffer.from(JSON.stringify(['ev1', ...parts])).toString('base64url')
  for (const cursor of [forged('2024-13-45T99:99:99.000000Z', 'gh', 'a'), forged('0000-01-01T00:00:00.000000Z', 'gh', 'a'),
    forged('2024-01-01T00:00:00.000000Z', 'gh\u0000', 'a'), forged('2024-01-01T00:00:00.000000Z', 'gh', 'a\u0000')]) {
    for (const path of [`/admin/events?cursor=${cursor}`, `/admin/events?tool=gh&status=failed&cursor=${cursor}`]) {
      const res = await call(ctx, 'GET', path)
      assert.equal([res.status, res.json.error?.code], [400, 'EVENT_CURSOR_INVALID'], path)
    }
  }
  assert.equal(ctx.logs.filter((l) => l.includes('failed unexpectedly')), [])
})

Admin('a NUL character in a path id, a DLQ filter or a JSON body is a 400 naming where it is, never a 500', async (ctx) => {
  await call(ctx, 'PUT', '/admin/tools/gh-main', { provider: 'github', secret: SECRET })
  await seedDlq(ctx.handle, [{ event: { tool_id: 'gh-main' } }])
  const cases: [string, string, unknown?][] = [
    ['GET', '/admin/tools/gh%00'], ['DELETE', '/admin/tools/gh%00'], ['PUT', '/admin/tools/gh%00', { provider: 'github', secret: SECRET }],
    ['GET', '/admin/events/a%00'], ['GET', '/admin/tools/gh%00/events/a'], ['GET', '/admin/tools/gh-main/events/a%00'],
    ['GET', '/admin/tools/gh-main/events/a%00/content'], ['GET', '/admin/tools/gh%00/destinations'], ['DELETE', '/admin/tools/gh-main/destinations/a%00'],
    ['POST', '/admin/tools/gh%00/secret/retire'],
    ['GET', '/admin/dlq?tool=gh%00'], ['GET', '/admin/dlq?event_type=%00'], ['POST', '/admin/dlq/retry', { tool: 'gh\u0000' }],
    ['PUT', '/admin/tools/gh-main', { provider: 'github', tenant_id: 'acme\u0000' }],
    ['PUT', '/admin/tools/gh-other', { provider: 'github', secret: SECRET, transform: '$\u0000' }],
  ]
  for (const [method, path, body] of cases) {
    const res = await call(ctx, method, path, body)
    assert.is(res.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.json)}`)
    assert.match(res.json.error.message, /NUL/, `${method} ${path}`)
  }
  assert.equal(ctx.logs.filter((l) => l.includes('failed unexpectedly')), [])
  assert.is((await ctx.store.get('gh-main'))?.tenantId, 'default', 'the refused PUT changed nothing')
  assert.is(await ctx.redis.xlen(ctx.keys.stream), 0, 'nothing was re-queued')
})

Admin('a lone UTF-16 surrogate in a JSON body string (not Unicode text) is a 400 naming the field, never a 500', async (ctx) => {
  for (const [path, body] of [['/admin/tools/gh-lone', '{"provider":"github","secret":"gh-signing-secret","tenant_id":"acme\\ud800"}'],
    ['/admin/tools/gh-lone', '{"provider":"github","secret":"gh-signing-secret","transform":{"repo":"\\udc00"}}']] as const) {
    const res = await call(ctx, 'PUT', path, body)
    assert.is(res.status, 400, `${body}: ${JSON.stringify(res.json)}`)
    assert.is(res.json.error.code, 'INVALID_JSON')
    assert.match(res.json.error.message, /surrogate/)
  }
  assert.equal(ctx.logs.filter((l) => l.includes('failed unexpectedly')), [])
  assert.is(await ctx.store.get('gh-lone'), undefined)
})

Admin('a DLQ filter value of the wrong type, however deep or large, is a 400 with a short message, never a 500', async (ctx) => {
  const deep = '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000)
  for (const body of [`{"status":${deep}}`, `{"status":[${deep}]}`, `{"tool":${deep}}`]) {
    const res = await call(ctx, 'POST', '/admin/dlq/retry', body)
    assert.is(res.status, 400, body.slice(0, 40))
    assert.match(res.json.error.message, /nested more than 512 levels deep/)
  }
  for (const body of [`{"event_type":[${'"x",'.repeat(100_000)}"x"]}`, `{"status":"pending,${'x'.repeat(100_000)}"}`, `{"status":[{"a":"${'x'.repeat(100_000)}"}]}`]) {
    const res = await call(ctx, 'POST', '/admin/dlq/retry', body)
    assert.equal([res.status, res.json.error?.code], [400, 'DLQ_FILTER_INVALID'], body.slice(0, 40))
    assert.ok(res.json.error.message.length < 400, `a short message: ${res.json.error.message.length} characters`)
  }
  assert.equal(ctx.logs.filter((l) => l.includes('failed unexpectedly')), [])
})

Admin('a DLQ filter time that is not ISO 8601 ("10/11/2024", "0", "Nov 10 2024") is refused, not read as some other day, and re-queues nothing', async (ctx) => {
  await seedDlq(ctx.handle, [{}, {}])
  for (const at of ['10/11/2024', '0', '1', 'Nov 10 2024', '2024-11-10 10:00']) {
    const list = await call(ctx, 'GET', `/admin/dlq?from=${encodeURIComponent(at)}`)
    assert.equal([list.status, list.json.error?.code], [400, 'DLQ_FILTER_INVALID'], `list from=${at}`)
    const retry = await call(ctx, 'POST', '/admin/dlq/retry', { from: at })
    assert.equal([retry.status, retry.json.error?.code], [400, 'DLQ_FILTER_INVALID'], `retry from=${at}`)
    assert.match(retry.json.error.message, /"from" must be an ISO 8601 time/)
  }
  assert.is(await ctx.redis.xlen(ctx.keys.stream), 0, 'nothing was re-queued')
  for (const at of ['2024-11-10', '2024-11-10T10:00Z', '2024-11-10T10:00:00.123+02:00']) {
    assert.is((await call(ctx, 'GET', `/admin/dlq?from=${encodeURIComponent(at)}`)).status, 200, at)
  }
})

Admin('retry by filter with only empty filter values is refused as no filter, and re-queues nothing', async (ctx) => {
  await seedDlq(ctx.handle, [{ event: { tool_id: 'gh' } }, { event: { tool_id: 'gl' } }])
  for (const body of [{ tool: '' }, { status: '', event_type: null }, { from: '', to: '' }]) {
    const res = await call(ctx, 'POST', '/admin/dlq/retry', body)
    assert.equal([res.status, res.json.error?.code], [400, 'DLQ_FILTER_REQUIRED'], JSON.stringify(body))
  }
  assert.is(await ctx.redis.xlen(ctx.keys.stream), 0, 'nothing was re-queued')
  assert.is((await call(ctx, 'POST', '/admin/dlq/retry', { tool: '', all: true })).json.requeued, 2, '"all": true still re-queues every entry')
})

Admin('a DLQ listing with a query parameter it does not know (a misspelt filter) is 400 naming it, not every row', async (ctx) => {
  await seedDlq(ctx.handle, [{ event: { tool_id: 'gh' } }, { event: { tool_id: 'gl' }, status: 'failed' }])
  const typo = await call(ctx, 'GET', '/admin/dlq?staus=failed')
  assert.equal([typo.status, typo.json.error?.code], [400, 'DLQ_FILTER_INVALID'])
  assert.match(typo.json.error.message, /"staus".*expected .*status/)
  const ok = await call(ctx, 'GET', '/admin/dlq?status=failed&tool_id=gl&limit=10')
  assert.equal([ok.status, ok.json.entries.length], [200, 1])
})

Admin('a bulk retry answers the count of every row it re-queued but lists at most 1000 of them, saying the list is cut', async (ctx) => {
  await seedDlq(ctx.handle, Array.from({ length: 1005 }, () => ({ event: { tool_id: 'gh' } })))
  const res = await call(ctx, 'POST', '/admin/dlq/retry', { all: true })
  assert.is(res.status, 200)
  assert.equal([res.json.requeued, res.json.entries.length, res.json.entries_truncated], [1005, 1000, true])
  assert.is(await ctx.redis.xlen(ctx.keys.stream), 1005, 'every row was re-queued')
  await seedDlq(ctx.handle, [{ event: { tool_id: 'gl' } }])
  const small = await call(ctx, 'POST', '/admin/dlq/retry', { tool: 'gl' })
  assert.equal([small.json.requeued, small.json.entries.length, small.json.entries_truncated], [1, 1, false])
})

Admin('retry one: re-queued with retry_count + 1 and every field; show has the history; a second retry is 409', async (ctx) => {
  const [row] = await seedDlq(ctx.handle, [{}])
  const res = await call(ctx, 'POST', `/admin/dlq/${row!.id}/retry`)
  assert.is(res.status, 200)
  assert.equal([res.json.requeued.id, res.json.requeued.retry_count], [row!.id, 1])
  const [event, ...more] = await streamEvents(ctx.redis, ctx.keys.stream)
  assert.is(more.length, 0)
  assert.equal(event, { ...row!.event, retry_count: 1 })
  const shown = await call(ctx, 'GET', `/admin/dlq/${row!.id}`)
  assert.equal([shown.json.entry.status, shown.json.entry.error_code, shown.json.entry.error_class], ['retrying', 'DESTINATION_4XX', 'permanent'])
  assert.equal(shown.json.entry.event.auth_context, row!.event.auth_context)
  assert.equal(shown.json.entry.history.map((h: { action: string }) => h.action), ['dlq_requeued'])
  assert.equal(await call(ctx, 'POST', `/admin/dlq/${row!.id}/retry`).then((r) => [r.status, r.json.error.code]), [409, 'DLQ_NOT_RETRYABLE'])
  assert.equal(await call(ctx, 'POST', '/admin/dlq/987654/retry').then((r) => [r.status, r.json.error.code]), [404, 'DLQ_NOT_FOUND'])
  assert.equal(await call(ctx, 'GET', '/admin/dlq/987654').then((r) => [r.status, r.json.error.code]), [404, 'DLQ_NOT_FOUND'])
})

Admin('two concurrent retries of one row: one 200, one 409, one stream entry', async (ctx) => {
  const rows = await seedDlq(ctx.handle, [{}, {}, {}])
  for (const row of rows) {
    const results = await Promise.all([call(ctx, 'POST', `/admin/dlq/${row.id}/retry`), call(ctx, 'POST', `/admin/dlq/${row.id}/retry`)])
    assert.equal(results.map((r) => r.status).sort(), [200, 409])
  }
  assert.is(await ctx.redis.xlen(ctx.keys.stream), 3)
})

Admin('retry by filter re-queues exactly the matching rows and answers the count; an empty filter is refused', async (ctx) => {
  const rows = await seedDlq(ctx.handle, [
    ...Array.from({ length: 4 }, () => ({ event: { tool_id: 'gh', event_type: 'webhook.github.push' } })),
    { event: { tool_id: 'gh', event_type: 'webhook.github.issues' } },
    { event: { tool_id: 'gl', event_type: 'webhook.github.push' } },
    { event: { tool_id: 'gh', event_type: 'webhook.github.push' }, status: 'resolved' },
  ])
  assert.equal(await call(ctx, 'POST', '/admin/dlq/retry', {}).then((r) => [r.status, r.json.error.code]), [400, 'DLQ_FILTER_REQUIRED'])
  assert.equal(await call(ctx, 'POST', '/admin/dlq/retry', { tools: 'gh' }).then((r) => [r.status, r.json.error.code]), [400, 'DLQ_FILTER_INVALID'])
  const res = await call(ctx, 'POST', '/admin/dlq/retry', { tool: 'gh', event_type: 'webhook.github.push' })
  assert.equal([res.status, res.json.requeued], [200, 4])
  const events = await streamEvents(ctx.redis, ctx.keys.stream)
  assert.equal(new Set(events.map((e) => e.id)), new Set(rows.slice(0, 4).map((r) => r.event.id)))
  assert.ok(events.every((e) => e.retry_count === 1 && (e.metadata as { headers: object }).headers !== undefined))
  assert.is((await call(ctx, 'POST', '/admin/dlq/retry', { all: true })).json.requeued, 2)
  assert.is(await ctx.redis.xlen(ctx.keys.stream), 6)
})

Admin('undecodable entries answer 409 on retry and can be discarded; discard twice is 409', async (ctx) => {
  const [bad] = await seedDlq(ctx.handle, [{ undecodable: true, status: 'failed' }])
  const retry = await call(ctx, 'POST', `/admin/dlq/${bad!.id}/retry`)
  assert.equal([retry.status, retry.json.error.code], [409, 'DLQ_UNDECODABLE'])
  assert.match(retry.json.error.message, /discard/)
  const discarded = await call(ctx, 'POST', `/admin/dlq/${bad!.id}/discard`)
  assert.equal([discarded.status, discarded.json.entry.status, discarded.json.entry.undecodable], [200, 'discarded', true])
  assert.equal(await call(ctx, 'POST', `/admin/dlq/${bad!.id}/discard`).then((r) => [r.status, r.json.error.code]), [409, 'DLQ_NOT_DISCARDABLE'])
  assert.is(await ctx.redis.exists(ctx.keys.stream), 0)
  const history = (await call(ctx, 'GET', `/admin/dlq/${bad!.id}`)).json.entry.history
  assert.equal(history.map((h: { action: string; actor: string }) => [h.action, h.actor]), [['dlq_discarded', 'admin-api']])
})

/** Writes the `webhook_events` row a worker would have stored for `event` (stream id 1700000000000-0). */
async function storeRow(ctx: Ctx, event: StreamEvent): Promise<void> {
  await ctx.handle.db.insertInto('webhook_events').values({
    id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type, repository: event.repository,
    payload: JSON.stringify(event.payload), stream_id: '1700000000000-0', received_at: event.timestamp,
  }).execute()
}

Admin('GET /admin/events/:id tells where an event is: stored, then dead-lettered with its DLQ history', async (ctx) => {
  const event = makeEvent()
  await storeRow(ctx, event)
  await ctx.redis.set(`${ctx.keys.idempotencyPrefix}${event.tool_id}:${event.id}`, 'done')
  const stored = (await call(ctx, 'GET', `/admin/events/${event.id}`)).json.event
  assert.equal([stored.state, stored.stored.stream_id, stored.accepted_at, stored.idempotency, stored.dlq], ['stored', '1700000000000-0', event.timestamp, 'done', []])
  const [row] = await seedDlq(ctx.handle, [{ event: { id: 'evt-dlq-1' } }])
  await call(ctx, 'POST', `/admin/dlq/${row!.id}/retry`)
  const fate = (await call(ctx, 'GET', '/admin/events/evt-dlq-1')).json.event
  assert.equal([fate.state, fate.stored, fate.dlq.length, fate.dlq[0].status, fate.idempotency], ['retrying', null, 1, 'retrying', 'none'])
  assert.equal(fate.history.map((h: { action: string }) => h.action), ['dlq_requeued'])
  assert.equal(await call(ctx, 'GET', '/admin/events/nope').then((r) => [r.status, r.json.error.code]), [404, 'EVENT_NOT_FOUND'])
})

Admin('an event is found by tool and delivery id; a delivery id two tools share lists both under GET /admin/events/:id', async (ctx) => {
  const a = makeEvent({ id: 'shared-0001', tool_id: 'tool-a' })
  const b = makeEvent({ id: 'shared-0001', tool_id: 'tool-b', repository: 'acme/other' })
  await storeRow(ctx, a)
  await storeRow(ctx, b)
  const one = await call(ctx, 'GET', '/admin/tools/tool-b/events/shared-0001')
  assert.equal([one.status, one.json.event.tool_id, one.json.event.stored.repository], [200, 'tool-b', 'acme/other'])
  const both = await call(ctx, 'GET', '/admin/events/shared-0001')
  assert.equal([both.status, both.json.event, both.json.events.map((e: { tool_id: string }) => e.tool_id)], [200, undefined, ['tool-a', 'tool-b']])
  const missing = await call(ctx, 'GET', '/admin/tools/tool-c/events/shared-0001')
  assert.equal([missing.status, missing.json.error.code], [404, 'EVENT_NOT_FOUND'])
})

Admin('GET /admin/events/:id finds the idempotency marker in the event\'s partition when the stream is partitioned', async (ctx) => {
  const event = makeEvent()
  await storeRow(ctx, event)
  const partitions = new StreamPartitions({ redis: ctx.redis, keys: ctx.keys, count: 4 })
  const keys = partitions.keys[partitions.indexOf(event)]!
  await ctx.redis.set(idempotencyKey(keys, event.tool_id, event.id), 'done')
  const server = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({
    db: ctx.handle.db, redis: ctx.redis, keys: ctx.keys, partitionKeys: partitions.keys, tools: ctx.registry, toolStore: ctx.store,
    stream: new StreamClient({ redis: ctx.redis, stream: ctx.keys.stream }), token: TOKEN,
  })))
  try {
    const get = async (url: string) => ((await (await fetch(`${url}/admin/events/${event.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as any).event
    assert.is((await get(server.url)).idempotency, 'done')
    // without the partitions it looks only in the base key space, where the marker is not
    assert.is((await get(ctx.http.url)).idempotency, 'none')
  } finally {
    await server.close()
  }
})

Admin('the DLQ changes it makes are counted in webhook_dlq_retries_total: a retry as requeued, a discard as discarded', async (ctx) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const server = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({
    db: ctx.handle.db, redis: ctx.redis, keys: ctx.keys, tools: ctx.registry, toolStore: ctx.store,
    stream: new StreamClient({ redis: ctx.redis, stream: ctx.keys.stream }), token: TOKEN,
    onDlqStatusChange: (change, count) => metrics.dlqRetry(change, count),
  })))
  try {
    const [one, , , bad] = await seedDlq(ctx.handle, [{}, { event: { tool_id: 'gh' } }, { event: { tool_id: 'gh' } }, { undecodable: true }])
    const post = async (path: string, body?: unknown) => (await fetch(`${server.url}${path}`, { method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) })).status
    assert.is(await post(`/admin/dlq/${one!.id}/retry`), 200)
    assert.is(await post('/admin/dlq/retry', { tool: 'gh' }), 200)
    assert.is(await post(`/admin/dlq/${bad!.id}/retry`), 409)
    assert.is(await post(`/admin/dlq/${bad!.id}/discard`), 200)
    assert.is(await post(`/admin/dlq/${bad!.id}/discard`), 409)
    const s = parseExposition(await metrics.metricsText())
    assert.equal(Object.fromEntries(['requeued', 'resolved', 'failed', 'discarded'].map((status) => [status, sampleTotal(s, 'webhook_dlq_retries_total', { status })])),
      { requeued: 3, resolved: 0, failed: 0, discarded: 1 })
  } finally {
    await server.close()
    metrics.close()
  }
})

Admin.run()
