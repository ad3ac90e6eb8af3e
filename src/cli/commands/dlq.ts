import { parseDuration } from '../../core/duration.js'
import { isPipelineError } from '../../core/errors.js'
import { parseDlqFilter, type DlqFilter } from '../../db/dlq-filter.js'
import { DlqStore } from '../../db/dlq-store.js'
import { mainStreamClient } from '../../sources/partitions.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec, type FlagSpecs } from '../command.js'
import type { CliContext } from '../context.js'
import { CommandFailure, formatFields, print, stringFlag, UsageError, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream dlq list [--status s1,s2] [--tool id] [--event-type t] [--from iso] [--to iso] [--limit n] [--cursor c]\n' +
  '       hookstream dlq show <id> | retry <id> | retry --all [--status …] [--tool …] [--event-type …] [--from …] [--to …]\n' +
  '       hookstream dlq discard <id> | purge [--status resolved|discarded] [--older-than 168h]   (--json for JSON output)'

const ACTOR = 'cli'

function filterOf(flags: Parameters<Command>[1]): DlqFilter {
  try {
    return parseDlqFilter({
      status: stringFlag(flags, 'status'), tool: stringFlag(flags, 'tool'), event_type: stringFlag(flags, 'event-type'),
      from: stringFlag(flags, 'from'), to: stringFlag(flags, 'to'),
    })
  } catch (err) {
    // a bad filter value is a wrong command line: exit 2, nothing touched
    if (isPipelineError(err)) throw new UsageError(`${err.message} (check --status, --tool, --event-type, --from, --to)`)
    throw err
  }
}

function idOf(raw: string | undefined, sub: string): number {
  if (!raw || !/^[1-9]\d{0,14}$/.test(raw)) throw new UsageError(`dlq ${sub} needs a DLQ entry id (a positive integer, see \`hookstream dlq list\`); got ${JSON.stringify(raw ?? '')}`)
  return Number(raw)
}

function storeOf(ctx: CliContext): DlqStore {
  return new DlqStore({
    db: ctx.db.db, stream: mainStreamClient({ redis: ctx.redis, keys: ctx.config.keys, count: ctx.config.scale.partitions, key: ctx.config.scale.partitionKey }),
    ...(ctx.config.streamMaxLen !== undefined ? { maxLen: ctx.config.streamMaxLen } : {}),
  })
}

/**
 * `hookstream dlq list|show|retry|discard|purge`: inspects and manages dead-lettered events. `retry` re-queues
 * on the main stream with `retry_count + 1` (status `retrying`, audit `dlq_requeued`, actor `cli`), row-locked
 * so it never races the DLQ worker or the admin API.
 *
 * @example
 * hookstream dlq list --status pending --tool gh-main
 * hookstream dlq retry --all --tool gh-main --event-type webhook.github.push
 */
export const dlqCommand: Command = async (args, flags, io) => {
  const [sub, id, ...extra] = args
  if (!sub || !['list', 'show', 'retry', 'discard', 'purge'].includes(sub) || extra.length > 0) {
    io.stderr(`hookstream dlq: ${sub ? `unknown or malformed subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  return withContext('dlq', flags, io, async (ctx) => {
    const dlq = storeOf(ctx)
    switch (sub) {
      case 'list': {
        const limitRaw = stringFlag(flags, 'limit')
        const cursor = stringFlag(flags, 'cursor')
        const page = await dlq.list(filterOf(flags), { limit: limitRaw === undefined ? 50 : Number(limitRaw), ...(cursor ? { cursor } : {}) })
        print(io, flags, { entries: page.entries, next_cursor: page.nextCursor }, () => {
          const table = formatTable(page.entries.map((e) => ({
            id: e.id, status: e.status, tool: e.tool_id, event_type: e.event_type ?? '(undecodable)', event_id: e.event_id,
            code: e.error_code, retries: e.retry_count, failed_at: e.failed_at, next_retry_at: e.next_retry_at,
          })))
          return page.nextCursor ? `${table}\nmore: hookstream dlq list --cursor ${page.nextCursor}` : table
        })
        return 0
      }
      case 'show': {
        const entry = await dlq.get(idOf(id, sub))
        if (!entry) throw new CommandFailure(`DLQ entry ${id} does not exist; list entries with \`hookstream dlq list\``)
        print(io, flags, entry, () => {
          const { history, event, event_raw: raw, ...fields } = entry
          const lines = history.map((h) => ({ at: h.at, action: h.action, actor: h.actor, details: h.details }))
          // a raw row is what jsonb could not hold: shown as the text that was queued, not re-serialized
          const shown = raw !== null ? `event (raw: not valid jsonb, kept byte for byte):\n${raw}` : `event:\n${JSON.stringify(event, null, 2)}`
          return `${formatFields(fields)}\n\n${shown}\n\nhistory:\n${formatTable(lines)}`
        })
        return 0
      }
      case 'retry': {
        if (id !== undefined) {
          if (flags.all) throw new UsageError('dlq retry takes either an id or --all with filters, not both')
          const done = await dlq.retryOne(idOf(id, sub), ACTOR)
          print(io, flags, { requeued: done }, () => `DLQ entry ${done.id} (event ${done.event_id}) re-queued as stream entry ${done.stream_id}, retry ${done.retry_count}`)
          return 0
        }
        if (!flags.all) throw new UsageError(`dlq retry needs an entry id, or --all (narrowed by --status, --tool, --event-type, --from, --to)\n${USAGE}`)
        // the count is of every row; --json lists the first 1000, as the admin API does
        const done = await dlq.retryMatching(filterOf(flags), ACTOR, (n) => io.progress?.(`re-queued ${n} DLQ entries…`), 1000)
        io.progress?.('')
        print(io, flags, { requeued: done.count, entries: done.entries, entries_truncated: done.count > done.entries.length }, () => `${done.count} DLQ entries re-queued`)
        return 0
      }
      case 'discard': {
        const entry = await dlq.discard(idOf(id, sub), ACTOR)
        print(io, flags, { entry }, () => `DLQ entry ${entry.id} (event ${entry.event_id}) discarded`)
        return 0
      }
      default: {
        if (id !== undefined) throw new UsageError(`dlq purge takes no id\n${USAGE}`)
        const status = stringFlag(flags, 'status')
        const statuses = status === undefined ? undefined : status.split(',').map((s) => s.trim())
        if (statuses?.some((s) => s !== 'resolved' && s !== 'discarded')) throw new UsageError(`dlq purge --status must be resolved and/or discarded; got "${status}"`)
        const olderRaw = stringFlag(flags, 'older-than') ?? '168h'
        const olderThanMs = parseDuration(olderRaw)
        if (olderThanMs === undefined) throw new UsageError(`--older-than must be a duration such as "168h" or "30m"; got "${olderRaw}"`)
        const deleted = await dlq.purge({ olderThanMs, ...(statuses ? { statuses: statuses as ('resolved' | 'discarded')[] } : {}) })
        print(io, flags, { deleted }, () => `${deleted} DLQ entries deleted (${statuses?.join(', ') ?? 'resolved, discarded'}; older than ${olderRaw})`)
        return 0
      }
    }
  })
}

const FILTER_FLAGS: FlagSpecs = {
  status: { type: 'string', description: 'statuses, comma-separated (pending, retrying, resolved, failed, discarded)' },
  tool: { type: 'string', description: 'only entries of this tool id' },
  'event-type': { type: 'string', description: 'only entries of this event type, e.g. webhook.github.push' },
  from: { type: 'string', description: 'failed at or after this ISO time' },
  to: { type: 'string', description: 'failed before this ISO time' },
}

/** `hookstream dlq` as registered in the CLI. */
export const dlqSpec: CommandSpec = {
  summary: 'inspect and re-drive dead letters (list, show, retry, discard, purge)',
  usage: USAGE,
  flags: {
    ...JSON_FLAG, ...FILTER_FLAGS,
    all: { type: 'boolean', description: 'retry: every entry the filters match (pending and failed by default)' },
    limit: { type: 'string', description: 'list: entries per page (default 50)' },
    cursor: { type: 'string', description: 'list: the next page, as printed by the previous one' },
    'older-than': { type: 'string', description: 'purge: entries resolved or discarded longer ago than this (default 168h)' },
  },
  run: dlqCommand,
}
