import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql } from 'kysely'
import { randomBytes } from 'node:crypto'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { sharedPostgres } from '../helpers/servers.js'

const Store = suite<{ handle?: Db }>('ToolStore', {})
Store.before(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase() })
  await migrateToLatest(ctx.handle.db)
})
Store.after(async (ctx) => { await ctx.handle?.close() })

function tool(id: string, extra: Record<string, unknown> = {}): ToolConfig {
  return parseTool({ id, provider: 'github', secret: `tok-${id}-secret`, ...extra })
}

async function rawSecret(handle: Db, id: string): Promise<string> {
  return (await handle.db.selectFrom('webhook_tools').select('secret').where('id', '=', id).executeTakeFirstOrThrow()).secret
}

Store('stores tools and reads them back in their validated shape', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db })
  const full = parseTool({
    id: 'rt-full', provider: 'generic', secret: 'abc', tenant_id: 'acme', processing_mode: 'store_and_forward',
    forward_url: 'https://example.test/hook?token=x', transform: { branch: 'ref' }, transform_timeout: '250ms', max_body: '256KiB', enabled: false,
    retry_policy: { max_retries: 3, initial_interval: '250ms', max_interval: '1m', multiplier: 1.5, max_elapsed_time: '10m' },
    signature: { header: 'X-Sig', encoding: 'base64', prefix: 'sha256=' },
  })
  const plain = parseTool({ id: 'rt-plain', provider: 'generic', signature: 'none', transform: '$.a', processing_mode: 'transform_and_store' })
  assert.equal(await store.upsert(full, 'test'), { created: true })
  await store.upsert(plain, 'test')
  assert.equal(await store.get('rt-full'), full)
  assert.equal(await store.get('rt-plain'), plain)
  assert.is(await store.get('rt-missing'), undefined)
  assert.equal((await store.list()).filter((t) => t.id.startsWith('rt-')), [full, plain])
})

Store('each change writes one audit row, without the secret', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db })
  assert.equal(await store.upsert(tool('au-1'), 'alice'), { created: true })
  assert.equal(await store.upsert(tool('au-1', { enabled: false }), 'bob'), { created: false })
  assert.is((await store.get('au-1'))!.enabled, false)
  assert.is(await store.remove('au-1', 'carol'), true)
  assert.is(await store.remove('au-1', 'carol'), false)
  assert.is(await store.get('au-1'), undefined)
  const audit = await handle!.db.selectFrom('webhook_audit_log').select(['entity', 'action', 'actor', 'details'])
    .where(sql<string>`details->>'tool_id'`, '=', 'au-1').orderBy('id').execute()
  assert.equal(audit.map((a) => [a.entity, a.action, a.actor]),
    [['tool', 'tool_upserted', 'alice'], ['tool', 'tool_upserted', 'bob'], ['tool', 'tool_deleted', 'carol']])
  assert.equal(audit.map((a) => (a.details as { created?: boolean }).created), [true, false, undefined])
  assert.not.match(JSON.stringify(audit), /tok-au-1-secret/)
})

Store('with a key the column holds only ciphertext and reads decrypt it', async ({ handle }) => {
  for (const [n, key] of [randomBytes(32).toString('hex'), randomBytes(32).toString('base64'), 'a passphrase of some length'].entries()) {
    const store = new ToolStore({ db: handle!.db, encryptionKey: key })
    const t = tool(`enc-${n}`)
    await store.upsert(t, 'test')
    const raw = await rawSecret(handle!, t.id)
    assert.match(raw, /^enc:v2:[0-9a-f]{12}:[A-Za-z0-9+/]+=*$/)
    assert.not.match(raw, /secret/)
    assert.is((await store.get(t.id))!.secret, t.secret)
  }
})

Store('an encrypted secret read without the key or with another one fails naming HOOKSTREAM_ENCRYPTION_KEY', async ({ handle }) => {
  await new ToolStore({ db: handle!.db, encryptionKey: randomBytes(32) }).upsert(tool('enc-x'), 'test')
  for (const [store, pattern] of [
    [new ToolStore({ db: handle!.db }), /HOOKSTREAM_ENCRYPTION_KEY is not set, but the secret of tool "enc-x"/],
    [new ToolStore({ db: handle!.db, encryptionKey: randomBytes(32) }), /HOOKSTREAM_ENCRYPTION_KEY has id [0-9a-f]{12}, but the secret of tool "enc-x" .*was written with key [0-9a-f]{12}/],
  ] as const) {
    try {
      await store.get('enc-x')
      assert.unreachable('read an encrypted secret with the wrong key')
    } catch (err) {
      assert.match((err as Error).message, pattern)
      assert.not.match((err as Error).message, /tok-enc-x-secret/)
    }
  }
})

Store('a secret stored in plain text before a key was set still reads, and is encrypted on the next write', async ({ handle }) => {
  await new ToolStore({ db: handle!.db }).upsert(tool('pt-1'), 'test')
  assert.is(await rawSecret(handle!, 'pt-1'), 'tok-pt-1-secret')
  const keyed = new ToolStore({ db: handle!.db, encryptionKey: randomBytes(32) })
  const t = (await keyed.get('pt-1'))!
  assert.is(t.secret, 'tok-pt-1-secret')
  await keyed.upsert(t, 'rotate')
  assert.match(await rawSecret(handle!, 'pt-1'), /^enc:v2:/)
})

async function rawRow(handle: Db, id: string) {
  return handle.db.selectFrom('webhook_tools')
    .select(['secret', 'previous_secret', 'forward_secret', 'previous_forward_secret', 'forward_headers']).where('id', '=', id).executeTakeFirstOrThrow()
}

Store('rotation secrets and forward headers round-trip, each column encrypted and bound to its own field', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db, encryptionKey: randomBytes(32) })
  const t = parseTool({
    id: 'rot-1', provider: 'github', secret: 'tok-new-inbound', previous_secret: 'tok-old-inbound', previous_secret_expires_at: '2030-01-01T00:00:00Z',
    processing_mode: 'store_and_forward', forward_url: 'https://example.test/hook', forward_secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    previous_forward_secret: 'whsec_dGhlIHByZXZpb3VzIHNpZ25pbmcga2V5', forward_headers: { Authorization: 'Bearer tok-dest-cred' },
  })
  await store.upsert(t, 'test')
  assert.equal(await store.get('rot-1'), t)
  const raw = await rawRow(handle!, 'rot-1')
  for (const value of Object.values(raw)) assert.match(String(value), /^enc:v2:/)
  assert.not.match(JSON.stringify(raw), /tok-|whsec_|Bearer/)
  // a ciphertext moved to another column does not decrypt: each is bound to its column
  await handle!.db.updateTable('webhook_tools').set({ previous_secret: raw.secret }).where('id', '=', 'rot-1').execute()
  try {
    await store.get('rot-1')
    assert.unreachable('a ciphertext moved between columns decrypted')
  } catch (err) {
    assert.match((err as Error).message, /cannot decrypt the secret of tool "rot-1"/)
  }
})

Store('key rotation end to end: the previous key reads, reencrypt moves every row (and plain ones) to the new key, then the old key is not needed', async () => {
  // a database of its own: reencrypt must read every row, and the other tests leave rows of other keys
  const handle = await createDb({ url: await (await sharedPostgres()).createDatabase() })
  await migrateToLatest(handle.db)
  try {
    await rotateKeys(handle)
  } finally {
    await handle.close()
  }
})

async function rotateKeys(handle: Db): Promise<void> {
  const oldKey = randomBytes(32).toString('base64')
  const newKey = 'a long passphrase for the new key'
  await new ToolStore({ db: handle.db }).upsert(tool('kr-plain'), 'test')
  const before = new ToolStore({ db: handle.db, encryptionKey: oldKey })
  await before.upsert(tool('kr-old', { forward_secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', forward_headers: { 'x-api-key': 'tok-k' } }), 'test')
  const oldId = (await rawRow(handle, 'kr-old')).secret.split(':')[2]
  const rotating = new ToolStore({ db: handle.db, encryptionKey: newKey, encryptionKeyPrevious: oldKey })
  assert.is((await rotating.get('kr-old'))!.forwardSecret, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')
  await rotating.upsert(tool('kr-new'), 'test')
  const newId = (await rawRow(handle, 'kr-new')).secret.split(':')[2]
  assert.is.not(newId, oldId)

  const result = await rotating.reencrypt('test')
  const kr = (await handle.db.selectFrom('webhook_tools').select('id').where('id', 'like', 'kr-%').execute()).length
  assert.is(kr, 3)
  assert.ok(result.rewritten >= 2, `rewritten ${result.rewritten}`)
  for (const id of ['kr-plain', 'kr-old', 'kr-new']) {
    for (const value of Object.values(await rawRow(handle, id))) {
      if (value !== null) assert.ok(String(value).startsWith(`enc:v2:${newId}:`), `${id}: ${String(value).slice(0, 24)}`)
    }
  }
  assert.is((await rotating.reencrypt('test')).rewritten, 0, 'a second run has nothing left to move')
  const after = new ToolStore({ db: handle.db, encryptionKey: newKey })
  assert.equal((await after.get('kr-old'))!.forwardHeaders, { 'x-api-key': 'tok-k' })
  assert.is((await after.get('kr-plain'))!.secret, 'tok-kr-plain-secret')
  try {
    await new ToolStore({ db: handle.db, encryptionKey: oldKey }).get('kr-old')
    assert.unreachable('the old key still read a re-encrypted row')
  } catch (err) {
    assert.match((err as Error).message, /HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS/)
  }
  const audit = await handle.db.selectFrom('webhook_audit_log').select(['details']).where('action', '=', 'tools_reencrypted').execute()
  assert.is(audit.length, 2)
  assert.not.match(JSON.stringify(audit), /tok-|whsec_/)
}

Store('destinations round-trip encrypted at rest, and modify changes them under a lock with one audit row', async ({ handle }) => {
  const store = new ToolStore({ db: handle!.db, encryptionKey: randomBytes(32).toString('hex') })
  const withDestinations = tool('dst-1', { destinations: [
    { id: 'ci', url: 'https://ci.example.test/in', event_types: ['webhook.github.push'], filter: 'ref = "main"', headers: { authorization: 'Bearer dst-header-value' },
      secret: 'dst-signing-secret', rate_limit: { per_second: 5 }, max_concurrency: 2, timeout: '2s', retry_policy: { max_retries: 1 } },
    { id: 'audit', url: 'https://audit.example.test/in', enabled: false },
  ] })
  await store.upsert(withDestinations, 'test')
  assert.equal(await store.get('dst-1'), withDestinations)
  const raw = await handle!.db.selectFrom('webhook_tools').select('destinations').where('id', '=', 'dst-1').executeTakeFirstOrThrow()
  assert.not.match(String(raw.destinations), /dst-signing-secret|dst-header-value|ci\.example/)
  // two concurrent changes both land: the row lock serializes them
  await Promise.all([
    store.modify('dst-1', (t) => ({ ...t, destinations: t.destinations!.filter((d) => d.id !== 'audit') }), 'a', 'destination_removed', { destination_id: 'audit' }),
    store.modify('dst-1', (t) => ({ ...t, destinations: t.destinations!.map((d) => ({ ...d, enabled: false })) }), 'b', 'destination_updated', { destination_id: 'ci' }),
  ])
  const after = await store.get('dst-1')
  assert.equal(after!.destinations!.map((d) => [d.id, d.enabled]), [['ci', false]])
  assert.is(await store.modify('dst-missing', (t) => t, 'a', 'destination_updated'), undefined)
  const audit = await handle!.db.selectFrom('webhook_audit_log').select(['action', 'details'])
    .where(sql<string>`details->>'tool_id'`, '=', 'dst-1').orderBy('id').execute()
  assert.equal(audit.map((a) => a.action).sort(), ['destination_removed', 'destination_updated', 'tool_upserted'])
  assert.not.match(JSON.stringify(audit), /dst-signing-secret|dst-header-value/)
})

Store('rejects a key of the wrong size', ({ handle }) => {
  assert.throws(() => new ToolStore({ db: handle!.db, encryptionKey: randomBytes(16) }), /"encryptionKey" must be 32 bytes; got 16/)
  assert.throws(() => new ToolStore({ db: handle!.db, encryptionKey: 'tiny' }), /HOOKSTREAM_ENCRYPTION_KEY/)
})

Store('replace over a row sealed under another key refuses instead of overwriting secrets it cannot read', async ({ handle }) => {
  const writer = new ToolStore({ db: handle!.db, encryptionKey: 'the key the row was written with' })
  await writer.upsert(tool('rp-sealed', { previous_secret: 'old-inbound-secret' }), 'test')
  const before = await rawSecret(handle!, 'rp-sealed')
  const other = new ToolStore({ db: handle!.db, encryptionKey: 'another key of sixteen+ characters' })
  try {
    await other.replace('rp-sealed', (existing) => ({ tool: parseTool({ id: 'rp-sealed', provider: 'github', secret: existing?.secret ?? 'new' }) }), 'test')
    assert.unreachable('should have been refused')
  } catch (err) {
    assert.is((err as Error).name, 'ConfigError')
  }
  assert.is(await rawSecret(handle!, 'rp-sealed'), before)
  assert.is((await writer.get('rp-sealed'))?.previousSecret, 'old-inbound-secret')
})

Store.run()
