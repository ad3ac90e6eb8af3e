import { eventHistory, toolsWithEvent } from '../../db/event-history.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { CommandFailure, formatFields, print, UsageError, withContext } from './command-helpers.js'
import { eventsListCommand, EVENTS_LIST_FLAGS, EVENTS_LIST_USAGE } from './events-list.js'
import { eventsReplayCommand, EVENTS_REPLAY_FLAGS, EVENTS_REPLAY_USAGE } from './events-replay.js'

const USAGE = `usage: hookstream events show [<tool id>] <event id> [--json]\n       ${EVENTS_LIST_USAGE}\n       ${EVENTS_REPLAY_USAGE}`

/**
 * `hookstream events show <tool> <id>`: where one event is and what happened to it (stored, forwarded,
 * dead-lettered, re-queued, resolved, discarded) and every delivery attempt per destination, from the events
 * table, the DLQ, the delivery log and the audit log — the same
 * as `GET /admin/tools/:tool/events/:deliveryId`. An event is identified by its tool and its delivery id; with
 * the id alone it shows the event when one tool has that id, and lists the tools when several do.
 *
 * @example
 * hookstream events show gh-main 72d3162e-cc78-11e3-81ab-4c9367dc0958
 */
export const eventsCommand: Command = async (args, flags, io) => {
  const [sub, first, second, ...extra] = args
  if (sub === 'list') {
    const replayOnly = Object.keys(EVENTS_REPLAY_FLAGS).filter((f) => flags[f] !== undefined)
    if (replayOnly.length > 0) {
      io.stderr(`hookstream events: ${replayOnly.map((f) => `--${f}`).join(', ')} belong to "events replay", not "events list"\n${USAGE}`)
      return 2
    }
    return eventsListCommand(args.slice(1), flags, io)
  }
  if (sub === 'replay') return eventsReplayCommand(args.slice(1), flags, io)
  const listOnly = [...Object.keys(EVENTS_LIST_FLAGS), ...Object.keys(EVENTS_REPLAY_FLAGS)].filter((f) => flags[f] !== undefined)
  if (listOnly.length > 0) {
    io.stderr(`hookstream events: ${listOnly.map((f) => `--${f}`).join(', ')} belong to "events list", not "events ${sub ?? ''}"\n${USAGE}`)
    return 2
  }
  if (sub !== 'show' || !first || extra.length > 0) {
    io.stderr(`hookstream events: ${sub === 'show' ? 'missing event id' : `unknown or malformed subcommand "${args.join(' ')}"`}\n${USAGE}`)
    return 2
  }
  return withContext('events', flags, io, async (ctx) => {
    const id = second ?? first
    const tools = second !== undefined ? [first] : await toolsWithEvent(ctx.db.db, id)
    if (tools.length > 1) {
      throw new UsageError(`event id "${id}" belongs to ${tools.length} tools (${tools.join(', ')}); name one: hookstream events show <tool id> ${id}`)
    }
    const fate = tools[0] === undefined ? undefined : await eventHistory(ctx.db.db, tools[0], id)
    if (!fate) {
      throw new CommandFailure(`no stored row, DLQ entry or audit row has event id "${id}"${second !== undefined ? ` of tool "${first}"` : ''}; it may still be on the stream, or was never accepted`)
    }
    print(io, flags, fate, () => {
      const { dlq, history, stored, deliveries, attempts, ...head } = fate
      return [
        formatFields({ ...head, ...(stored ?? { stored: 'no' }) }),
        '', 'destinations:', formatTable(Object.entries(deliveries).map(([destination, d]) => ({
          destination, state: d.state, retries: d.attempts ?? 0, code: d.error_code ?? '', at: d.at }))),
        '', 'DLQ entries:', formatTable(dlq.map((d) => ({ id: d.id, status: d.status, code: d.error_code, retries: d.retry_count, failed_at: d.failed_at, resolved_at: d.resolved_at }))),
        '', 'delivery attempts:', formatTable(attempts.flatMap((d) => d.attempts.map((a) => ({
          destination: d.destination_id, attempt: a.attempt, started_at: a.started_at, ms: a.duration_ms, status: a.http_status ?? '', code: a.error_code ?? '',
          next_attempt_at: a.next_attempt_at ?? '' })))),
        '', 'history:', formatTable(history.map((h) => ({ at: h.at, action: h.action, actor: h.actor, details: h.details }))),
      ].join('\n')
    })
    return 0
  }, { needRedis: false })
}

/** `hookstream events` as registered in the CLI. */
export const eventsSpec: CommandSpec = {
  summary: 'search events (events list), show where one is and what happened to it (events show <event id>), send stored events again (events replay)',
  usage: USAGE,
  flags: { ...JSON_FLAG, ...EVENTS_LIST_FLAGS, ...EVENTS_REPLAY_FLAGS },
  run: eventsCommand,
}
