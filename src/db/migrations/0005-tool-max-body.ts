import type { Kysely } from 'kysely'

/**
 * Adds `webhook_tools.max_body_bytes`, the largest request body a tool accepts, in bytes (NULL: INGEST_MAX_BODY).
 *
 * @example
 * await up(db) // normally through migrateToLatest(db)
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_tools').addColumn('max_body_bytes', 'integer').execute()
}

/**
 * Drops `webhook_tools.max_body_bytes`.
 *
 * @example
 * await migrator.migrateDown()
 */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_tools').dropColumn('max_body_bytes').execute()
}
