import type { Kysely } from 'kysely'

/**
 * Adds `webhook_tools.transform_timeout_ms`, a tool's transform budget in milliseconds (NULL: the default, 100).
 *
 * @example
 * await up(db) // normally through migrateToLatest(db)
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_tools').addColumn('transform_timeout_ms', 'integer').execute()
}

/**
 * Drops `webhook_tools.transform_timeout_ms`.
 *
 * @example
 * await migrator.migrateDown()
 */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_tools').dropColumn('transform_timeout_ms').execute()
}
