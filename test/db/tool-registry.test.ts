import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { isPipelineError } from '../../src/core/errors.js'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { startPostgres, type TestPostgres } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'

const Registry = suite<{ server?: TestPostgres; handle?: Db }>('ToolRegistry', {})
Registry.before(async (ctx) => {
  ctx.server = await startPostgres()
  ctx.handle = await createDb({ url: await ctx.server.createDatabase(), connectTimeoutMs: 1000 })
  await migrateToLatest(ctx.handle.db)
})
Registry.after(async (ctx) => {
  await ctx.handle?.close()
  await ctx.server?.stop()
})

function tool(id: string, extra: Record<string, unknown> = {}): ToolConfig {
  return parseTool({ id, provider: 'github', secret: 's3cret', ...extra })
}

/** The real store, counting the calls the registry makes. */
function counted(store: ToolStore) {
  const calls = { list: 0, get: 0 }
  return {
    calls,
    list: () => { calls.list++; return store.list() },
    get: (id: string) => { calls.get++; return store.get(id) },
  }
}

async function expectUnavailable(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await promise
    assert.unreachable('expected TOOLS_UNAVAILABLE')
  } catch (err) {
    assert.ok(isPipelineError(err), String(err))
    assert.is(err.kind, 'infrastructure')
    assert.is(err.code, 'TOOLS_UNAVAILABLE')
    assert.match(err.message, pattern)
  }
}

Registry('without a store it serves the static tools', async () => {
  const registry = new ToolRegistry({ tools: [tool('st-1'), tool('st-2', { enabled: false })] })
  assert.is((await registry.get('st-1'))?.id, 'st-1')
  assert.is((await registry.get('st-2'))?.enabled, false)
  assert.is(await registry.get('st-3'), undefined)
  assert.throws(() => new ToolRegistry({ tools: [tool('d'), tool('d')] }), /lists tool "d" twice/)
  assert.throws(() => new ToolRegistry({ refreshMs: 0 }), /"refreshMs" must be a positive integer/)
  await registry.close()
})

Registry('a stored tool overrides a static one, and changes show up within refreshMs', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db })
  await store.upsert(tool('ov-1', { tenant_id: 'from-db' }), 'test')
  // refreshMs 1000: the "not yet" check right after the upsert has a second of slack on a busy machine
  const registry = new ToolRegistry({ tools: [tool('ov-1', { tenant_id: 'from-yaml' }), tool('ov-2')], store, refreshMs: 1000 })
  assert.is((await registry.get('ov-1'))?.tenantId, 'from-db')
  assert.is((await registry.get('ov-2'))?.tenantId, 'default')
  await store.upsert(tool('ov-1', { tenant_id: 'changed', enabled: false }), 'test')
  await store.upsert(tool('ov-3'), 'test')
  assert.is((await registry.get('ov-1'))?.tenantId, 'from-db')
  await eventually('the change shows', async () => (await registry.get('ov-1'))?.tenantId === 'changed', 15_000)
  const changed = await registry.get('ov-1')
  assert.is(changed?.tenantId, 'changed')
  assert.is(changed?.enabled, false)
  await store.remove('ov-1', 'test')
  await eventually('the removal shows', async () => (await registry.get('ov-1'))?.tenantId === 'from-yaml', 15_000)
  await registry.close()
})

Registry('get() answers a miss from the loaded tool list: distinct unknown ids cost no query until the next refresh', async ({ handle }) => {
  const real = new ToolStore({ db: handle!.db })
  await real.upsert(tool('known-1'), 'test')
  const store = counted(real)
  const registry = new ToolRegistry({ store, refreshMs: 60_000 })
  const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => registry.get(`unknown-${i}`)))
  assert.is(answers.filter((a) => a === undefined).length, 500)
  assert.is((await registry.get('known-1'))?.id, 'known-1')
  assert.equal(store.calls, { list: 1, get: 0 })
  await real.upsert(tool('unknown-7'), 'test')
  assert.is(await registry.get('unknown-7'), undefined, 'not before the next refresh')
  await registry.refresh()
  assert.is((await registry.get('unknown-7'))?.id, 'unknown-7')
  assert.equal(store.calls, { list: 2, get: 0 })
  await registry.close()
})

Registry('a registry first filled by refresh() (an admin change) still reloads every refreshMs', async ({ handle }) => {
  const real = new ToolStore({ db: handle!.db })
  const registry = new ToolRegistry({ store: real, refreshMs: 50 })
  await registry.refresh()
  assert.is(await registry.get('later-1'), undefined)
  await real.upsert(tool('later-1'), 'test')
  await eventually('a tool saved by another process shows', async () => (await registry.get('later-1'))?.id === 'later-1', 15_000)
  await registry.close()
})

Registry('getQueued() reads a miss from the store once, and an unknown id is remembered for refreshMs', async ({ handle }) => {
  const real = new ToolStore({ db: handle!.db })
  const store = counted(real)
  const registry = new ToolRegistry({ store, refreshMs: 60_000 })
  assert.is(await registry.getQueued('miss-1'), undefined)
  assert.equal(store.calls, { list: 1, get: 1 })
  await Promise.all([registry.getQueued('miss-1'), registry.getQueued('miss-1')])
  assert.equal(store.calls, { list: 1, get: 1 })
  await real.upsert(tool('miss-2'), 'test')
  const [a, b] = await Promise.all([registry.getQueued('miss-2'), registry.getQueued('miss-2')])
  assert.is(a?.id, 'miss-2')
  assert.is(b, a)
  assert.equal(store.calls, { list: 1, get: 2 })
  // found once, it is in the cache: get() and getQueued() serve it without a query
  assert.is((await registry.get('miss-2'))?.id, 'miss-2')
  await registry.getQueued('miss-2')
  assert.equal(store.calls, { list: 1, get: 2 })
  await real.upsert(tool('miss-1'), 'test')
  await registry.refresh()
  assert.is((await registry.getQueued('miss-1'))?.id, 'miss-1')
  assert.equal(store.calls, { list: 2, get: 2 })
  await registry.close()
})

Registry('a failed refresh keeps the last good cache and is reported; a miss then waits as TOOLS_UNAVAILABLE', async ({ handle, server }) => {
  const store = new ToolStore({ db: handle!.db })
  await store.upsert(tool('down-1'), 'test')
  const errors: Error[] = []
  const registry = new ToolRegistry({ store, refreshMs: 50, onError: (err) => errors.push(err) })
  assert.is((await registry.get('down-1'))?.id, 'down-1')
  await server!.stop()
  try {
    await eventually('a refresh failed', () => errors.length > 0, 15_000)
    assert.ok(isPipelineError(errors[0]) && errors[0].code === 'TOOLS_UNAVAILABLE', String(errors[0]))
    assert.ok(registry.refreshError)
    assert.is((await registry.get('down-1'))?.id, 'down-1')
    await expectUnavailable(registry.get('down-2'), /reading tool "down-2"/)
  } finally {
    await server!.start()
  }
  await eventually('a refresh succeeded again', () => registry.refreshError === undefined, 15_000)
  await registry.close()
})

Registry('a bad row is skipped and reported once; every other stored tool still loads and changes within refreshMs', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db, encryptionKey: 'the key of this process, 16+' })
  await store.upsert(tool('rb-ok'), 'test')
  await store.upsert(tool('rb-gone'), 'test')
  await new ToolStore({ db: handle!.db, encryptionKey: 'another key, saved elsewhere' }).upsert(tool('rb-otherkey'), 'test')
  await handle!.db.insertInto('webhook_tools').values({ id: 'rb-svn', provider: 'svn', secret: 'x', tenant_id: 'acme', processing_mode: 'store',
    forward_url: null, transform: null, retry_policy: JSON.stringify({}), signature: null, enabled: true }).execute()
  await handle!.db.insertInto('webhook_tools').values({ id: 'rb-retry', provider: 'github', secret: 'x', tenant_id: 'acme', processing_mode: 'store',
    forward_url: null, transform: null, retry_policy: JSON.stringify({ max_retries: -1 }), signature: null, enabled: true }).execute()
  const reported: string[] = []
  const registry = new ToolRegistry({ tools: [tool('rb-svn'), tool('rb-static')], store, refreshMs: 50,
    onUnreadable: (id) => reported.push(id) })
  try {
    assert.is((await registry.get('rb-ok'))?.id, 'rb-ok')
    assert.is((await registry.get('rb-static'))?.id, 'rb-static')
    for (const id of ['rb-svn', 'rb-otherkey', 'rb-retry']) {
      try {
        await registry.get(id)
        assert.unreachable(`${id} must not load`)
      } catch (err) {
        assert.ok(isPipelineError(err) && err.code === 'TOOL_UNREADABLE' && err.kind === 'permanent', String(err))
        assert.match((err as Error).message, new RegExp(`tool "${id}" is stored in webhook_tools but cannot be read`))
      }
    }
    assert.equal([...registry.unreadable.keys()].sort(), ['rb-otherkey', 'rb-retry', 'rb-svn'])
    // the rest of the table still takes effect: a rotated secret, a disabled tool, a deleted one
    await store.upsert(tool('rb-ok', { secret: 'rotated-secret', enabled: false }), 'test')
    await store.remove('rb-gone', 'test')
    for (let i = 0; i < 60 && (await registry.get('rb-ok'))?.enabled !== false; i++) await sleep(25)
    assert.equal([(await registry.get('rb-ok'))?.secret, (await registry.get('rb-ok'))?.enabled], ['rotated-secret', false])
    assert.is(await registry.get('rb-gone'), undefined)
    await sleep(200)
    assert.equal(reported.sort(), ['rb-otherkey', 'rb-retry', 'rb-svn'], 'each bad row reported once, not per refresh')
    assert.is(registry.refreshError, undefined)
  } finally {
    await registry.close()
    // the suite shares one database: leave no rows that a store without this key cannot read
    await handle!.db.deleteFrom('webhook_tools').where('id', 'like', 'rb-%').execute()
  }
})

Registry('before the first load succeeds, get() rejects with TOOLS_UNAVAILABLE', async () => {
  const nowhere = await createDb({ url: 'postgres://nobody@127.0.0.1:1/none', connectTimeoutMs: 500 })
  const registry = new ToolRegistry({ store: new ToolStore({ db: nowhere.db }), tools: [tool('static-1')] })
  await expectUnavailable(registry.get('static-1'), /loading the tool list.*unreachable/)
  await expectUnavailable(registry.get('static-1'), /loading the tool list/)
  await registry.close()
  await nowhere.close()
})

Registry('a stored tool whose forwards would sign with its inbound secret (saved by an older version) is reported once, not on every refresh', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db })
  const key = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
  await store.upsert(tool('legacy-fw', { processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in',
    destinations: [{ id: 'own', url: 'https://o.example.test/in', secret: key }, { id: 'bare', url: 'https://b.example.test/in' }] }), 'test')
  await store.upsert(tool('signed-fw', { processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in', forward_secret: key }), 'test')
  const reported: [string, readonly string[]][] = []
  const registry = new ToolRegistry({ store, refreshMs: 60_000, onInboundSigned: (id, destinations) => reported.push([id, destinations]) })
  try {
    await registry.refresh()
    await registry.refresh()
    assert.equal(reported.filter(([id]) => id.endsWith('-fw')), [['legacy-fw', ['default', 'bare']]])
    await store.upsert(tool('legacy-fw', { processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in', forward_secret: key }), 'test')
    await registry.refresh()
    assert.is(reported.filter(([id]) => id.endsWith('-fw')).length, 1)
    assert.ok(!JSON.stringify(reported).includes('s3cret'))
  } finally {
    await registry.close()
  }
})

Registry('a tool removed and added again with forwards signed by its inbound secret is reported again', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db })
  const legacy = () => tool('again-fw', { processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in' })
  await store.upsert(legacy(), 'test')
  const reported: string[] = []
  const registry = new ToolRegistry({ store, refreshMs: 60_000, onInboundSigned: (id) => reported.push(id) })
  try {
    await registry.refresh()
    assert.equal(reported.filter((id) => id === 'again-fw'), ['again-fw'])
    assert.ok(await store.remove('again-fw', 'test'))
    await registry.refresh()
    // a new tool under the old id: its operator gets the warning too
    await store.upsert(legacy(), 'test')
    await registry.refresh()
    assert.equal(reported.filter((id) => id === 'again-fw'), ['again-fw', 'again-fw'])
  } finally {
    await registry.close()
  }
})

Registry('close() is idempotent and stops the refresh timer', async ({ handle }) => {
  const store = counted(new ToolStore({ db: handle!.db }))
  const registry = new ToolRegistry({ store, refreshMs: 30 })
  await registry.get('any')
  await sleep(120)
  assert.ok(store.calls.list >= 2, `refreshed ${store.calls.list} times`)
  const first = registry.close()
  assert.is(registry.close(), first)
  await first
  const after = store.calls.list
  await sleep(120)
  assert.is(store.calls.list, after)
})

Registry.run()
