import { eventHistory } from '../../db/event-history.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { CommandFailure, formatFields, print, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream events show <event id> [--json]'

/**
 * `hookstream events show <id>`: where one event is and what happened to it (stored, forwarded, dead-lettered,
 * re-queued, resolved, discarded), from the events table, the DLQ and the audit log — the same as
 * `GET /admin/events/:id`.
 *
 * @example
 * hookstream events show 72d3162e-cc78-11e3-81ab-4c9367dc0958
 */
export const eventsCommand: Command = async (args, flags, io) => {
  const [sub, id, ...extra] = args
  if (sub !== 'show' || !id || extra.length > 0) {
    io.stderr(`hookstream events: ${sub === 'show' ? 'missing event id' : `unknown or malformed subcommand "${args.join(' ')}"`}\n${USAGE}`)
    return 2
  }
  return withContext('events', flags, io, async (ctx) => {
    const fate = await eventHistory(ctx.db.db, id)
    if (!fate) throw new CommandFailure(`no stored row, DLQ entry or audit row has event id "${id}"; it may still be on the stream, or was never accepted`)
    print(io, flags, fate, () => {
      const { dlq, history, stored, ...head } = fate
      return [
        formatFields({ ...head, ...(stored ?? { stored: 'no' }) }),
        '', 'DLQ entries:', formatTable(dlq.map((d) => ({ id: d.id, status: d.status, code: d.error_code, retries: d.retry_count, failed_at: d.failed_at, resolved_at: d.resolved_at }))),
        '', 'history:', formatTable(history.map((h) => ({ at: h.at, action: h.action, actor: h.actor, details: h.details }))),
      ].join('\n')
    })
    return 0
  }, { needRedis: false })
}

/** `hookstream events` as registered in the CLI. */
export const eventsSpec: CommandSpec = {
  summary: 'where one event is and what happened to it (events show <event id>)',
  usage: USAGE,
  flags: JSON_FLAG,
  run: eventsCommand,
}
