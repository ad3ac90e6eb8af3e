import { readBreakerBoard } from '../../sinks/breaker-board.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { print, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream breakers list [--json]'

/**
 * `hookstream breakers list`: every destination whose circuit breaker is open or half-open, per worker process,
 * with failures in a row and when the next probe may go — the same as `GET /admin/breakers`. A closed breaker
 * is not listed.
 *
 * @example
 * hookstream breakers list --json
 */
export const breakersCommand: Command = async (args, flags, io) => {
  if (args[0] !== 'list' || args.length > 1) {
    io.stderr(`hookstream breakers: ${args[0] ? `unknown subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  return withContext('breakers', flags, io, async (ctx) => {
    const breakers = await readBreakerBoard(ctx.redis, ctx.config.keys.breakerStates)
    print(io, flags, { breakers }, () => (breakers.length === 0 ? 'every breaker is closed'
      : formatTable(breakers.map((b) => ({ destination: b.destination, worker: b.worker, state: b.state, failures: b.consecutive_failures,
        opened_at: b.opened_at ?? '', next_probe_at: b.next_probe_at ?? '' })))))
    return 0
  })
}

/** `hookstream breakers` as registered in the CLI. */
export const breakersSpec: CommandSpec = {
  summary: 'breakers list: destinations whose circuit breaker is open or half-open',
  usage: USAGE,
  flags: JSON_FLAG,
  run: breakersCommand,
}
