import type { Kysely } from 'kysely'

const COLUMNS = [
  ['previous_secret', 'text'], ['previous_secret_expires_at', 'timestamptz'], ['forward_secret', 'text'],
  ['previous_forward_secret', 'text'], ['previous_forward_secret_expires_at', 'timestamptz'], ['forward_headers', 'text'],
] as const

/**
 * Adds the rotatable secrets to `webhook_tools` (issue #16): the previous inbound secret and its expiry, the
 * forward signing secret and the previous one with its expiry, and the forward headers. All nullable, so
 * existing rows keep working (a tool without a forward secret signs forwards with its inbound secret).
 *
 * @example
 * await up(db) // normally through migrateToLatest(db)
 */
export async function up(db: Kysely<any>): Promise<void> {
  for (const [name, type] of COLUMNS) await db.schema.alterTable('webhook_tools').addColumn(name, type).execute()
}

/**
 * Drops those columns (and the secrets in them).
 *
 * @example
 * await migrator.migrateDown()
 */
export async function down(db: Kysely<any>): Promise<void> {
  for (const [name] of COLUMNS) await db.schema.alterTable('webhook_tools').dropColumn(name).execute()
}
