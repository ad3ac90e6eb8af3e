import type { Kysely } from 'kysely'

/**
 * Adds `webhook_tools.destinations` (the tool's destinations as JSON text, encrypted like the secrets when
 * HOOKSTREAM_ENCRYPTION_KEY is set: they hold signing secrets and headers) and `webhook_events.deliveries`
 * (jsonb: the fan-out state per destination id).
 *
 * @example
 * await up(db) // normally through migrateToLatest(db)
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_tools').addColumn('destinations', 'text').execute()
  await db.schema.alterTable('webhook_events').addColumn('deliveries', 'jsonb').execute()
}

/**
 * Drops both columns.
 *
 * @example
 * await migrator.migrateDown()
 */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_events').dropColumn('deliveries').execute()
  await db.schema.alterTable('webhook_tools').dropColumn('destinations').execute()
}
