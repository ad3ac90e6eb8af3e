import { PipelineError } from '../core/errors.js'

/** Where a searched event stands; see the README's "Search" section for the exact rule of each. */
export type SearchStatus = 'stored' | 'forwarded' | 'pending_delivery' | 'dead_lettered' | 'failed'

/** Every status `GET /admin/events?status=` and `hookstream events list --status` accept. */
export const SEARCH_STATUSES: readonly SearchStatus[] = Object.freeze(['stored', 'forwarded', 'pending_delivery', 'dead_lettered', 'failed'])

/** Where a page starts: after the event at (`at`, `toolId`, `deliveryId`) in newest-first order. */
export interface SearchCursor {
  /** The event's search time, ISO 8601 with microseconds (UTC). */
  readonly at: string
  readonly toolId: string
  readonly deliveryId: string
}

/** One event search: every field narrows; `limit` events per page, newest first. */
export interface EventSearch {
  readonly toolId?: string
  readonly tenantId?: string
  /** An exact event type, or a glob where `*` stands for any characters (`webhook.github.pull_request*`). */
  readonly eventType?: string
  readonly repository?: string
  readonly status?: SearchStatus
  readonly deliveryId?: string
  /** Events whose search time is at or after this. */
  readonly from?: Date
  /** Events whose search time is before this. */
  readonly to?: Date
  /** Events per page, 1–500. @defaultValue 50 */
  readonly limit: number
  readonly cursor?: SearchCursor
}

/** The parameters an event search reads (query parameters of `GET /admin/events`, flags of `events list`). */
export const SEARCH_PARAMETERS: readonly string[] = Object.freeze(['tool', 'tenant', 'event_type', 'repository', 'status', 'delivery_id', 'from', 'to', 'limit', 'cursor'])

/** Longest filter value, in characters (tool ids, tenants, event types, repositories, delivery ids). */
const MAX_VALUE_CHARS = 256
/** Largest page. */
export const MAX_SEARCH_LIMIT = 500
/** An ISO 8601 date or time with a zone, as the event search and the DLQ filters take them (`2024-06-01T00:00:00Z`). */
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/

function invalid(message: string, code = 'EVENT_FILTER_INVALID'): PipelineError {
  return new PipelineError('permanent', code, message)
}

/**
 * Reads an event search from string parameters (the names in `SEARCH_PARAMETERS`; an unknown name is an
 * error, so a misspelt filter never widens the answer). Throws a permanent PipelineError
 * `EVENT_FILTER_INVALID` naming the parameter, or `EVENT_CURSOR_INVALID` for a cursor this server did not issue.
 *
 * @example
 * parseEventSearch({ tool: 'gh-main', event_type: 'webhook.github.pull_request*', limit: '20' })
 */
export function parseEventSearch(input: Readonly<Record<string, string | undefined>>): EventSearch {
  const unknown = Object.keys(input).filter((k) => input[k] !== undefined && !SEARCH_PARAMETERS.includes(k))
  if (unknown.length > 0) {
    throw invalid(`unknown event search parameter(s) ${unknown.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}; expected ${SEARCH_PARAMETERS.join(', ')}`)
  }
  const text = (name: string): string | undefined => {
    const v = input[name]
    if (v === undefined) return undefined
    if (v === '' || v.length > MAX_VALUE_CHARS || /[\u0000-\u001f\u007f]/.test(v)) {
      throw invalid(`event search "${name}" must be 1–${MAX_VALUE_CHARS} printable characters; got ${JSON.stringify(v.slice(0, 40))}${v.length > 40 ? '…' : ''}`)
    }
    return v
  }
  const time = (name: string): Date | undefined => {
    const v = text(name)
    if (v === undefined) return undefined
    const at = new Date(v)
    if (!ISO_TIME.test(v) || Number.isNaN(at.getTime())) {
      throw invalid(`event search "${name}" must be an ISO 8601 time such as 2024-06-01T00:00:00Z; got ${JSON.stringify(v.slice(0, 40))}`)
    }
    return at
  }
  const status = text('status')
  if (status !== undefined && !(SEARCH_STATUSES as readonly string[]).includes(status)) {
    throw invalid(`event search "status" must be one of ${SEARCH_STATUSES.join(', ')}; got ${JSON.stringify(status.slice(0, 40))}`)
  }
  const limitText = text('limit') ?? '50'
  const limit = /^\d{1,4}$/.test(limitText) ? Number(limitText) : NaN
  if (!(limit >= 1 && limit <= MAX_SEARCH_LIMIT)) {
    throw invalid(`event search "limit" must be an integer from 1 to ${MAX_SEARCH_LIMIT}; got ${JSON.stringify(limitText.slice(0, 40))}`)
  }
  const from = time('from')
  const to = time('to')
  if (from && to && from.getTime() >= to.getTime()) {
    throw invalid(`event search "from" (${from.toISOString()}) must be before "to" (${to.toISOString()})`)
  }
  const cursor = input.cursor === undefined ? undefined : decodeSearchCursor(input.cursor)
  return {
    toolId: text('tool'), tenantId: text('tenant'), eventType: text('event_type'), repository: text('repository'),
    status: status as SearchStatus | undefined, deliveryId: text('delivery_id'), from, to, limit, cursor,
  }
}

/** The opaque cursor of the page after `cursor`'s event. */
export function encodeSearchCursor(cursor: SearchCursor): string {
  return Buffer.from(JSON.stringify(['ev1', cursor.at, cursor.toolId, cursor.deliveryId])).toString('base64url')
}

// whether an ISO time with microseconds names a real instant from year 1 on (a calendar date, hours below 24, …)
function isRealTime(iso: string): boolean {
  const at = new Date(iso)
  return !Number.isNaN(at.getTime()) && at.getUTCFullYear() >= 1 && at.toISOString().slice(0, 23) === iso.slice(0, 23)
}

/** The position an opaque cursor stands for; throws `EVENT_CURSOR_INVALID` for one `encodeSearchCursor` did not make. */
export function decodeSearchCursor(cursor: string): SearchCursor {
  let parts: unknown
  try {
    parts = cursor.length <= 2048 ? JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) : undefined
  } catch {
    parts = undefined
  }
  // a forged cursor must not reach PostgreSQL with a time it cannot cast (month 13, year 0) or an id with a NUL
  if (Array.isArray(parts) && parts.length === 4 && parts[0] === 'ev1' && parts.every((p) => typeof p === 'string' && !p.includes('\u0000'))
    && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(parts[1] as string) && isRealTime(parts[1] as string)) {
    return { at: parts[1] as string, toolId: parts[2] as string, deliveryId: parts[3] as string }
  }
  throw invalid('event search cursor is not one this server issued; pass "next_cursor" from the previous page unchanged', 'EVENT_CURSOR_INVALID')
}

/** `glob` as a LIKE pattern (`*` → `%`; `%`, `_` and `\` escaped), or undefined when it has no `*` (compare exactly). */
export function likePatternOf(glob: string): string | undefined {
  if (!glob.includes('*')) return undefined
  return glob.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%')
}
