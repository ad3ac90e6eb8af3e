import { sql, type Kysely } from 'kysely'

/**
 * Scopes event identity by tool and lets every dead letter fit its table:
 * - `webhook_events`: primary key `(tool_id, id)` instead of `id` (two tools may send one delivery id);
 * - `webhook_dlq`: one open row per `(tool_id, event_id)`; `event` may be NULL when the event is kept byte
 *   for byte in `event_raw` (bytea) because jsonb cannot hold it, which `event_format` (`jsonb` | `raw`) says;
 * - `webhook_audit_log`: a `tool_id` column, filled for existing DLQ rows from their DLQ row;
 * - `webhook_tools`: `delivery_id` (jsonb), where a generic tool's sender puts its delivery id.
 * Existing rows keep their ids (ids were unique, so they stay unique per tool): nothing is lost or duplicated.
 *
 * @example
 * await up(db) // normally through migrateToLatest(db)
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_pkey`.execute(db)
  await sql`ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_pkey PRIMARY KEY (tool_id, id)`.execute(db)
  // lookups by delivery id alone (GET /admin/events/:id lists every tool's match)
  await db.schema.createIndex('webhook_events_id_idx').on('webhook_events').column('id').execute()

  await db.schema.dropIndex('webhook_dlq_open_event_uq').execute()
  await db.schema.createIndex('webhook_dlq_open_event_uq').on('webhook_dlq').columns(['tool_id', 'event_id']).unique()
    .where(sql.ref('status'), 'in', ['pending', 'retrying', 'failed']).execute()
  await sql`ALTER TABLE webhook_dlq ALTER COLUMN event DROP NOT NULL`.execute(db)
  await db.schema.alterTable('webhook_dlq').addColumn('event_raw', 'bytea').execute()
  await db.schema.alterTable('webhook_dlq').addColumn('event_format', 'text', (c) => c.notNull().defaultTo('jsonb')
    .check(sql`event_format in ('jsonb', 'raw')`)).execute()
  await sql`ALTER TABLE webhook_dlq ADD CONSTRAINT webhook_dlq_event_kept CHECK
    ((event_format = 'jsonb' AND event IS NOT NULL) OR (event_format = 'raw' AND event_raw IS NOT NULL))`.execute(db)

  await db.schema.alterTable('webhook_tools').addColumn('delivery_id', 'jsonb').execute()

  await db.schema.alterTable('webhook_audit_log').addColumn('tool_id', 'text').execute()
  // under 0001 one event id had at most one tool's DLQ rows in practice; take the newest row's tool
  await sql`UPDATE webhook_audit_log a SET tool_id = (
    SELECT d.tool_id FROM webhook_dlq d WHERE d.event_id = a.event_id ORDER BY d.id DESC LIMIT 1)
    WHERE a.entity = 'dlq' AND a.event_id IS NOT NULL`.execute(db)
  await db.schema.createIndex('webhook_audit_log_tool_event_at_idx').on('webhook_audit_log').columns(['tool_id', 'event_id', 'at']).execute()
}

/**
 * Goes back to the 0001 keys. Fails (and changes nothing) when two tools now share an event id or a DLQ row
 * is kept raw, since the 0001 schema cannot hold either.
 *
 * @example
 * await createMigrator(db).migrateDown()
 */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('webhook_audit_log_tool_event_at_idx').execute()
  await db.schema.alterTable('webhook_audit_log').dropColumn('tool_id').execute()
  await db.schema.alterTable('webhook_tools').dropColumn('delivery_id').execute()
  await sql`ALTER TABLE webhook_dlq DROP CONSTRAINT webhook_dlq_event_kept`.execute(db)
  await db.schema.alterTable('webhook_dlq').dropColumn('event_format').execute()
  await db.schema.alterTable('webhook_dlq').dropColumn('event_raw').execute()
  await sql`ALTER TABLE webhook_dlq ALTER COLUMN event SET NOT NULL`.execute(db)
  await db.schema.dropIndex('webhook_dlq_open_event_uq').execute()
  await db.schema.createIndex('webhook_dlq_open_event_uq').on('webhook_dlq').column('event_id').unique()
    .where(sql.ref('status'), 'in', ['pending', 'retrying', 'failed']).execute()
  await db.schema.dropIndex('webhook_events_id_idx').execute()
  await sql`ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_pkey`.execute(db)
  await sql`ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_pkey PRIMARY KEY (id)`.execute(db)
}
