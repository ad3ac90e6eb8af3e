import type { Command } from '../command.js'
import { openContext } from '../context.js'

/**
 * `hookstream migrate`: applies the database migrations (the service also does this at startup) and prints
 * what was applied.
 *
 * @example
 * DATABASE_URL=postgres://… hookstream migrate
 */
export const migrateCommand: Command = async (_args, flags, io) => {
  const ctx = await openContext(flags, io, { needRedis: false })
  try {
    io.stdout('migrations are up to date')
    return 0
  } finally {
    await ctx.close()
  }
}
