import { isPipelineError } from '../../core/errors.js'
import { parseEventSearch, SEARCH_STATUSES, type EventSearch } from '../../db/event-search-filter.js'
import { searchEvents } from '../../db/event-search.js'
import { formatTable, type Command, type FlagSpecs } from '../command.js'
import { print, stringFlag, UsageError, withContext } from './command-helpers.js'

/** The usage line of `hookstream events list`. */
export const EVENTS_LIST_USAGE = 'hookstream events list [--tool id] [--tenant t] [--type glob] [--repository r] [--status s] ' +
  '[--delivery-id id] [--from iso] [--to iso] [--limit n] [--cursor c] [--json]'

// flag → the API's query parameter, so both go through one parser with the same checks and codes
const PARAMETER_OF_FLAG: Readonly<Record<string, string>> = {
  tool: 'tool', tenant: 'tenant', type: 'event_type', repository: 'repository', status: 'status',
  'delivery-id': 'delivery_id', from: 'from', to: 'to', limit: 'limit', cursor: 'cursor',
}

/** The flags of `hookstream events list` (each one a query parameter of `GET /admin/events`). */
export const EVENTS_LIST_FLAGS: FlagSpecs = {
  tool: { type: 'string', description: 'list: only events of this tool id' },
  tenant: { type: 'string', description: 'list: only events of this tenant' },
  type: { type: 'string', description: 'list: event type, exact or a glob with * (webhook.github.pull_request*)' },
  repository: { type: 'string', description: 'list: only events of this repository' },
  status: { type: 'string', description: `list: one of ${SEARCH_STATUSES.join(', ')}` },
  'delivery-id': { type: 'string', description: 'list: only events with this delivery id' },
  from: { type: 'string', description: 'list: received (or, never stored, failed) at or after this ISO time' },
  to: { type: 'string', description: 'list: received (or, never stored, failed) before this ISO time' },
  limit: { type: 'string', description: 'list: events per page, 1–500 (default 50)' },
  cursor: { type: 'string', description: 'list: the next page, as printed by the previous one' },
}

function searchOf(flags: Parameters<Command>[1]): EventSearch {
  const params: Record<string, string | undefined> = {}
  for (const [flag, name] of Object.entries(PARAMETER_OF_FLAG)) params[name] = stringFlag(flags, flag)
  try {
    return parseEventSearch(params)
  } catch (err) {
    // a bad filter is a wrong command line: exit 2 with the API's code, nothing read
    if (isPipelineError(err)) throw new UsageError(`${err.code}: ${err.message}`)
    throw err
  }
}

/**
 * `hookstream events list`: the search of `GET /admin/events` — stored events and open dead letters, newest
 * first, filtered and paged the same way (same parameters, same checks, same error codes) — as a table, or
 * `{ events, next_cursor }` with `--json`.
 *
 * @example
 * hookstream events list --tool gh-main --type 'webhook.github.pull_request*' --status pending_delivery
 */
export const eventsListCommand: Command = async (args, flags, io) => {
  if (args.length > 0) {
    io.stderr(`hookstream events: list takes no arguments; got "${args.join(' ')}"\nusage: ${EVENTS_LIST_USAGE}`)
    return 2
  }
  return withContext('events', flags, io, async (ctx) => {
    const search = searchOf(flags)
    const forwarding = ctx.config.tools.filter((t) => t.processingMode === 'store_and_forward').map((t) => t.id)
    const page = await searchEvents(ctx.db.db, search, forwarding)
    print(io, flags, page, () => {
      const table = formatTable(page.events.map((e) => ({
        received_at: e.received_at ?? '', status: e.status, tool: e.tool_id, delivery_id: e.delivery_id, event_type: e.event_type ?? '(undecodable)',
        tenant: e.tenant_id, repository: e.repository, forwarded_at: e.forwarded_at, dlq_id: e.dlq_id, failed_at: e.failed_at,
      })))
      return page.next_cursor ? `${table}\nmore: hookstream events list --cursor ${page.next_cursor} (with the same filters)` : table
    })
    return 0
  }, { needRedis: false })
}
