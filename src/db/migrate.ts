import type { Kysely } from 'kysely'
import { Migrator, type Migration, type MigrationResult } from 'kysely/migration'
import * as initial from './migrations/0001-initial.js'
import * as toolScopedIdentity from './migrations/0002-tool-scoped-identity.js'
import * as toolSecrets from './migrations/0003-tool-secrets.js'
import * as transformTimeout from './migrations/0004-tool-transform-timeout.js'
import * as toolMaxBody from './migrations/0005-tool-max-body.js'
import * as destinations from './migrations/0006-destinations.js'
import * as deliveryAttempts from './migrations/0007-delivery-attempts.js'

/** hookstream's migrations by name, in order. Listed here (not globbed) so they also run from dist/. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '0001-initial': initial,
  '0002-tool-scoped-identity': toolScopedIdentity,
  '0003-tool-secrets': toolSecrets,
  '0004-tool-transform-timeout': transformTimeout,
  '0005-tool-max-body': toolMaxBody,
  '0006-destinations': destinations,
  '0007-delivery-attempts': deliveryAttempts,
})

/**
 * A Kysely Migrator over hookstream's migrations. Its bookkeeping tables are `hookstream_migration` and
 * `hookstream_migration_lock`, so they do not clash with an application's own Kysely migrations.
 *
 * @example
 * await createMigrator(db).migrateDown()
 */
export function createMigrator(db: Kysely<any>): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...MIGRATIONS }) },
    migrationTableName: 'hookstream_migration',
    migrationLockTableName: 'hookstream_migration_lock',
  })
}

/**
 * Applies every pending migration (under Kysely's lock, so processes starting together apply each once).
 * Resolves with the names it applied; rejects with an Error naming the failed migration and the cause.
 *
 * @example
 * const applied = await migrateToLatest(db) // ['0001-initial', …] on an empty database, [] afterwards
 */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const { error, results } = await createMigrator(db).migrateToLatest()
  if (error !== undefined) {
    const failed = results?.find((r: MigrationResult) => r.status === 'Error')
    const detail = error instanceof Error ? error.message : String(error)
    throw new Error(`database migration ${failed ? `"${failed.migrationName}" ` : ''}failed: ${detail}; ` +
      'check that DATABASE_URL points at a PostgreSQL ≥ 13 the user may create tables in', { cause: error })
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
}

/** One of hookstream's migrations and whether this database has it. */
export interface MigrationState {
  readonly name: string
  /** When it was applied; undefined while it is pending. */
  readonly appliedAt?: Date
}

/**
 * Every hookstream migration in order, with when it was applied (pending ones have no `appliedAt`). Applies
 * nothing.
 *
 * @example
 * (await migrationStatus(db)).filter((m) => !m.appliedAt) // the pending ones
 */
export async function migrationStatus(db: Kysely<any>): Promise<MigrationState[]> {
  const infos = await createMigrator(db).getMigrations()
  return infos.map((m) => (m.executedAt ? { name: m.name, appliedAt: m.executedAt } : { name: m.name }))
}
