import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql, type Kysely } from 'kysely'
import { NO_MIGRATIONS } from 'kysely/migration'
import { createDb, type Database, type Db } from '../../src/db/database.js'
import { createMigrator, MIGRATIONS, migrateToLatest } from '../../src/db/migrate.js'
import { sharedPostgres } from '../helpers/servers.js'

async function tables(db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ t: string }>`SELECT table_name AS t FROM information_schema.tables
    WHERE table_schema = 'public' AND table_name LIKE 'webhook%' ORDER BY 1`.execute(db)
  return rows.map((r) => r.t)
}

async function dlqRow(db: Kysely<Database>, eventId: string, status: 'pending' | 'resolved' | 'failed'): Promise<void> {
  await db.insertInto('webhook_dlq').values({
    event_id: eventId, tool_id: 't', event: '{}', error: 'boom', error_class: 'permanent', status,
  }).execute()
}

for (const kind of ['postgres', 'pglite'] as const) {
  const Migrate = suite<{ handle?: Db }>(`migrateToLatest on ${kind}`, {})
  Migrate.before(async (ctx) => {
    ctx.handle = kind === 'postgres'
      ? await createDb({ url: await (await sharedPostgres()).createDatabase() })
      : await createDb({ pglitePath: 'memory://' })
  })
  Migrate.after(async (ctx) => { await ctx.handle?.close() })

  Migrate('creates the tables once, even when two processes migrate at the same time', async ({ handle }) => {
    const db = handle!.db
    const [a, b] = await Promise.all([migrateToLatest(db), migrateToLatest(db)])
    assert.equal([...a!, ...b!], Object.keys(MIGRATIONS))
    assert.equal(await migrateToLatest(db), [])
    assert.equal(await tables(db), ['webhook_audit_log', 'webhook_deliveries', 'webhook_dlq', 'webhook_events', 'webhook_tools'])
  })

  Migrate('allows one open DLQ row per event and any number of closed ones', async ({ handle }) => {
    const db = handle!.db
    await dlqRow(db, 'evt-1', 'resolved')
    await dlqRow(db, 'evt-1', 'resolved')
    await dlqRow(db, 'evt-1', 'pending')
    try {
      await dlqRow(db, 'evt-1', 'failed')
      assert.unreachable('a second open row was accepted')
    } catch (err) {
      assert.is((err as { code?: string }).code, '23505')
    }
    try {
      await db.insertInto('webhook_dlq').values({
        event_id: 'evt-2', tool_id: 't', event: '{}', error: 'x', error_class: 'permanent', status: 'bogus' as 'failed',
      }).execute()
      assert.unreachable('an unknown status was accepted')
    } catch (err) {
      assert.is((err as { code?: string }).code, '23514')
    }
    const rows = await db.selectFrom('webhook_dlq').select(['id', 'retry_count', 'status']).orderBy('id').execute()
    assert.is(rows.length, 3)
    assert.type(rows[0]!.id, 'number')
    assert.equal(rows.map((r) => r.retry_count), [0, 0, 0])
  })

  Migrate('stores payloads with lz4 where the server has it, pglz otherwise', async ({ handle }) => {
    const db = handle!.db
    const { rows } = await sql<{ lz4: boolean; method: string }>`SELECT
      coalesce((SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'), false) AS lz4,
      (SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'webhook_events'::regclass AND attname = 'payload') AS method`
      .execute(db)
    assert.is(rows[0]!.method, rows[0]!.lz4 ? 'l' : '')
  })

  Migrate('migrating down drops the tables', async ({ handle }) => {
    const db = handle!.db
    const { error } = await createMigrator(db).migrateTo(NO_MIGRATIONS)
    assert.is(error, undefined)
    assert.equal(await tables(db), [])
    assert.equal(await migrateToLatest(db), Object.keys(MIGRATIONS))
  })

  Migrate('0002 moves a database filled through the 0001 schema to per-tool keys without losing or duplicating a row', async ({ handle }) => {
    const db = handle!.db
    assert.is((await createMigrator(db).migrateTo('0001-initial')).error, undefined)
    const old = db as unknown as Kysely<any>
    const events = Array.from({ length: 30 }, (_, i) => ({
      id: `evt-${i}`, tool_id: i % 2 ? 'tool-a' : 'tool-b', tenant_id: 'acme', event_type: 'webhook.github.push', repository: '',
      payload: JSON.stringify({ i }), stream_id: `1-${i}`, received_at: new Date().toISOString(),
    }))
    await old.insertInto('webhook_events').values(events).execute()
    await old.insertInto('webhook_dlq').values([
      { event_id: 'dead-1', tool_id: 'tool-a', event: '{"id":"dead-1"}', error: 'x', error_class: 'permanent', status: 'pending' },
      { event_id: 'dead-2', tool_id: 'tool-b', event: '{"id":"dead-2"}', error: 'x', error_class: 'permanent', status: 'resolved' },
    ]).execute()
    await old.insertInto('webhook_audit_log').values([
      { event_id: 'dead-1', entity: 'dlq', action: 'dead_lettered', actor: 'worker' },
      { event_id: 'dead-2', entity: 'dlq', action: 'dlq_resolved', actor: 'worker' },
      { event_id: null, entity: 'tool', action: 'tool_upserted', actor: 'cli' },
    ]).execute()
    assert.equal(await migrateToLatest(db), Object.keys(MIGRATIONS).slice(1))
    const rows = await db.selectFrom('webhook_events').select(['tool_id', 'id', 'payload']).orderBy('stream_id').execute()
    assert.is(rows.length, 30)
    assert.equal(new Set(rows.map((r) => `${r.tool_id}/${r.id}`)).size, 30)
    assert.equal(rows.map((r) => (r.payload as { i: number }).i).sort((a, b) => a - b), events.map((_, i) => i))
    const dlq = await db.selectFrom('webhook_dlq').select(['event_id', 'tool_id', 'event_format', 'event']).orderBy('id').execute()
    assert.equal(dlq.map((d) => [d.event_id, d.tool_id, d.event_format, d.event]),
      [['dead-1', 'tool-a', 'jsonb', { id: 'dead-1' }], ['dead-2', 'tool-b', 'jsonb', { id: 'dead-2' }]])
    const audit = await db.selectFrom('webhook_audit_log').select(['event_id', 'tool_id', 'entity']).orderBy('id').execute()
    assert.equal(audit.map((a) => [a.event_id, a.tool_id]), [['dead-1', 'tool-a'], ['dead-2', 'tool-b'], [null, null]])
    // the new key: another tool may now store evt-0; the same tool still may not
    await db.insertInto('webhook_events').values({ ...events[0]!, tool_id: 'tool-c' }).execute()
    try {
      await db.insertInto('webhook_events').values(events[0]!).execute()
      assert.unreachable('a second row for (tool-b, evt-0) was accepted')
    } catch (err) {
      assert.is((err as { code?: string }).code, '23505')
    }
    assert.is((await db.selectFrom('webhook_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n, 31)
  })

  Migrate.run()
}
