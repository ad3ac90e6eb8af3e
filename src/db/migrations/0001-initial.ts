import { sql, type Kysely } from 'kysely'

/**
 * Creates hookstream's four tables: webhook_events, webhook_dlq, webhook_tools, webhook_audit_log.
 * Runs on PostgreSQL ≥ 13 and PGlite; `payload` uses lz4 compression where the server has it.
 *
 * @example
 * await up(db) // normally through migrateToLatest(db)
 */
export async function up(db: Kysely<any>): Promise<void> {
  const now = sql`now()`
  await db.schema.createTable('webhook_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tool_id', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('repository', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('transformed', 'jsonb')
    .addColumn('stream_id', 'text', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .addColumn('processed_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('forwarded_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('webhook_events_tool_received_idx').on('webhook_events').columns(['tool_id', 'received_at']).execute()
  // lz4 needs PostgreSQL ≥ 14 built with it (PGlite is not). The plpgsql handler runs the ALTER in a
  // subtransaction, so where it fails the migration's own transaction survives and pglz stays in use.
  await sql`DO $$ BEGIN
    ALTER TABLE webhook_events ALTER COLUMN payload SET COMPRESSION lz4;
  EXCEPTION WHEN others THEN NULL;
  END $$`.execute(db)

  await db.schema.createTable('webhook_dlq')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('tool_id', 'text', (c) => c.notNull())
    .addColumn('event', 'jsonb', (c) => c.notNull())
    .addColumn('error', 'text', (c) => c.notNull())
    .addColumn('error_class', 'text', (c) => c.notNull())
    .addColumn('error_code', 'text')
    .addColumn('retry_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending')
      .check(sql`status in ('pending', 'retrying', 'resolved', 'failed', 'discarded')`))
    .addColumn('failed_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('next_retry_at', 'timestamptz')
    .addColumn('resolved_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .execute()
  // one open row per event: a re-failure updates it (keeping retry_count) instead of starting over
  await db.schema.createIndex('webhook_dlq_open_event_uq').on('webhook_dlq').column('event_id').unique()
    .where(sql.ref('status'), 'in', ['pending', 'retrying', 'failed']).execute()
  await db.schema.createIndex('webhook_dlq_status_next_retry_idx').on('webhook_dlq').columns(['status', 'next_retry_at']).execute()

  await db.schema.createTable('webhook_tools')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('secret', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('tenant_id', 'text', (c) => c.notNull().defaultTo('default'))
    .addColumn('processing_mode', 'text', (c) => c.notNull().defaultTo('store'))
    .addColumn('forward_url', 'text')
    .addColumn('transform', 'jsonb')
    .addColumn('retry_policy', 'jsonb', (c) => c.notNull())
    .addColumn('signature', 'jsonb')
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .execute()

  await db.schema.createTable('webhook_audit_log')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(now))
    .addColumn('event_id', 'text')
    .addColumn('entity', 'text', (c) => c.notNull().check(sql`entity in ('event', 'dlq', 'tool')`))
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute()
  await db.schema.createIndex('webhook_audit_log_event_at_idx').on('webhook_audit_log').columns(['event_id', 'at']).execute()
}

/**
 * Drops the four tables (and their data).
 *
 * @example
 * await migrator.migrateDown()
 */
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['webhook_audit_log', 'webhook_tools', 'webhook_dlq', 'webhook_events']) {
    await db.schema.dropTable(table).ifExists().execute()
  }
}
