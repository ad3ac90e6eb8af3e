import { migrateToLatest, migrationStatus } from '../../db/migrate.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { print, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream migrate [--json]          apply pending database migrations and list what was applied\n' +
  '       hookstream migrate status [--json]   list applied and pending migrations; applies nothing'

/**
 * `hookstream migrate`: applies the pending database migrations (the service also does this at startup) and
 * prints the ones it applied. `hookstream migrate status` lists every migration, applied (with when) or
 * pending, and changes nothing.
 *
 * @example
 * DATABASE_URL=postgres://… hookstream migrate status
 */
export const migrateCommand: Command = async (args, flags, io) => {
  const [sub, ...extra] = args
  if ((sub !== undefined && sub !== 'status') || extra.length > 0) {
    io.stderr(`hookstream migrate: unknown subcommand "${args.join(' ')}"\n${USAGE}`)
    return 2
  }
  return withContext('migrate', flags, io, async (ctx) => {
    if (sub === 'status') {
      const all = await migrationStatus(ctx.db.db)
      const rows = all.map((m) => ({ name: m.name, status: m.appliedAt ? 'applied' : 'pending', applied_at: m.appliedAt ?? null }))
      print(io, flags, { migrations: rows, pending: rows.filter((r) => r.status === 'pending').length },
        () => formatTable(rows))
      return 0
    }
    const applied = await migrateToLatest(ctx.db.db)
    print(io, flags, { applied }, () => applied.length === 0
      ? 'no pending migrations; the database is up to date'
      : `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}`)
    return 0
  }, { needRedis: false, migrate: false })
}

/** `hookstream migrate` as registered in the CLI. */
export const migrateSpec: CommandSpec = {
  summary: 'apply database migrations and say which were applied; `migrate status` lists applied and pending ones',
  usage: USAGE,
  flags: JSON_FLAG,
  run: migrateCommand,
}
