import { sql } from 'kysely'
import type { Db } from './database.js'

/** One way PostgreSQL can lose what hookstream already acknowledged, and the setting that closes it. */
export interface DatabaseLoss {
  readonly loss: string
  readonly fix: string
}

/**
 * What PostgreSQL can lose of rows whose stream entries hookstream has acked, read as hookstream's own session
 * sees the settings (`current_setting('fsync')`, `current_setting('synchronous_commit')`: a role's or database's `SET` counts): `fsync = off`
 * can lose or corrupt committed rows in an operating-system crash; `synchronous_commit = off` reports a commit
 * before its WAL is on disk, so a PostgreSQL crash loses the last ones. Empty when both are on, for PGlite, and
 * when the settings cannot be read (nothing to warn about that is known). Logged at start and shown as
 * `/health`'s database reasons.
 *
 * @example
 * for (const { loss, fix } of await databaseDurabilityLosses(db)) logger.warn(`${loss}; ${fix}`)
 */
export async function databaseDurabilityLosses(db: Db): Promise<DatabaseLoss[]> {
  if (db.kind !== 'postgres') return []
  let fsync: string | undefined
  let synchronousCommit: string | undefined
  try {
    const row = (await sql<{ fsync: string; synchronous_commit: string }>`select current_setting('fsync') as fsync,
      current_setting('synchronous_commit') as synchronous_commit`.execute(db.db)).rows[0]
    fsync = row?.fsync
    synchronousCommit = row?.synchronous_commit
  } catch {
    return []
  }
  const losses: DatabaseLoss[] = []
  if (fsync === 'off') {
    losses.push({
      loss: 'PostgreSQL runs with fsync off: an operating-system crash or power failure can lose or corrupt rows whose stream entries hookstream already acknowledged',
      fix: 'set fsync = on in postgresql.conf',
    })
  }
  if (synchronousCommit === 'off') {
    losses.push({
      loss: 'PostgreSQL\'s synchronous_commit is off for hookstream\'s sessions: a PostgreSQL crash loses the last commits (up to 3 × wal_writer_delay) after their stream entries were acked',
      fix: 'set synchronous_commit = on (in postgresql.conf, or ALTER ROLE / ALTER DATABASE … SET synchronous_commit = on for hookstream\'s user or database)',
    })
  }
  return losses
}
