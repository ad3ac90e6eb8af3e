import { sql, type Kysely } from 'kysely'

/**
 * Creates `webhook_deliveries`: one row per HTTP attempt to deliver an event to a destination (attempt number,
 * start, duration, status, error class and code, the first 1 KiB of the response body, next attempt time).
 * Indexed by (tool_id, event_id) for an event's history and by started_at for DELIVERY_LOG_RETENTION.
 *
 * @example
 * await up(db) // normally through migrateToLatest(db)
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('webhook_deliveries')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('tool_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('destination_id', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('http_status', 'integer')
    .addColumn('error_class', 'text')
    .addColumn('error_code', 'text')
    .addColumn('response_body', 'text')
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('webhook_deliveries_event_idx').on('webhook_deliveries').columns(['tool_id', 'event_id']).execute()
  await db.schema.createIndex('webhook_deliveries_started_idx').on('webhook_deliveries').column('started_at').execute()
}

/**
 * Drops `webhook_deliveries`.
 *
 * @example
 * await migrator.migrateDown()
 */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webhook_deliveries').execute()
}
