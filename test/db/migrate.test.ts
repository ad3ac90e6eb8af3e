import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { NO_MIGRATIONS, sql, type Kysely } from 'kysely'
import { createDb, type Database, type Db } from '../../src/db/database.js'
import { createMigrator, migrateToLatest } from '../../src/db/migrate.js'
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

  Migrate('creates the four tables once, even when two processes migrate at the same time', async ({ handle }) => {
    const db = handle!.db
    const [a, b] = await Promise.all([migrateToLatest(db), migrateToLatest(db)])
    assert.equal([...a!, ...b!], ['0001-initial', '0002-tool-transform-timeout'])
    assert.equal(await migrateToLatest(db), [])
    assert.equal(await tables(db), ['webhook_audit_log', 'webhook_dlq', 'webhook_events', 'webhook_tools'])
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
    assert.equal(await migrateToLatest(db), ['0001-initial', '0002-tool-transform-timeout'])
  })

  Migrate.run()
}
