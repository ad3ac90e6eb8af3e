import { sql, type Kysely, type RawBuilder } from 'kysely'
import { PipelineError } from '../core/errors.js'
import type { Database } from './database.js'
import { sqlState, unavailableOr } from './database-error.js'
import { encodeSearchCursor, likePatternOf, type EventSearch, type SearchStatus } from './event-search-filter.js'

/** Longest one search may run, in ms; longer ones stop with `EVENT_SEARCH_TIMEOUT`. */
export const SEARCH_TIMEOUT_MS = 10_000

/** One event in a search answer: where it stands, never its payload. */
export interface EventSummary {
  readonly tool_id: string
  readonly delivery_id: string
  /** NULL only for a dead letter kept as raw bytes (its event could not be decoded). */
  readonly event_type: string | null
  readonly tenant_id: string | null
  readonly repository: string | null
  readonly status: SearchStatus
  /** When hookstream accepted it; null when it was never stored (a dead letter only). */
  readonly received_at: Date | null
  readonly stream_id: string | null
  readonly forwarded_at: Date | null
  /** The open DLQ row (pending, retrying or failed), when there is one. */
  readonly dlq_id?: number
  /** When that DLQ row last failed. */
  readonly failed_at?: Date
}

/** One page of a search, newest first; `next_cursor` is null on the last page. */
export interface EventPage {
  readonly events: EventSummary[]
  readonly next_cursor: string | null
}

interface Row {
  tool_id: string; delivery_id: string; event_type: string | null; tenant_id: string | null; repository: string | null
  status: SearchStatus; received_at: Date | null; stream_id: string | null; forwarded_at: Date | null
  dlq_id: string | number | null; failed_at: Date | null; at_key: string
}

const OPEN = sql`('pending', 'retrying', 'failed')`

// the distinct tool ids of webhook_events by a loose index scan (one probe per tool), or the one tool asked for
function toolsOf(search: EventSearch): RawBuilder<unknown> {
  if (search.toolId !== undefined) return sql`SELECT ${search.toolId}::text AS tool_id`
  return sql`(SELECT tool_id FROM webhook_events ORDER BY tool_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.tool_id FROM webhook_events e WHERE e.tool_id > t.tool_id ORDER BY e.tool_id LIMIT 1) FROM tools t WHERE t.tool_id IS NOT NULL`
}

function typeMatches(column: RawBuilder<unknown>, eventType: string): RawBuilder<unknown> {
  const like = likePatternOf(eventType)
  return like === undefined ? sql`${column} = ${eventType}` : sql`${column} LIKE ${like}`
}

// the narrowing every part shares, on the columns (or expressions) given
function common(search: EventSearch, c: { tenant: RawBuilder<unknown>; type: RawBuilder<unknown>; repository: RawBuilder<unknown>; id: RawBuilder<unknown>; at: RawBuilder<unknown> }): RawBuilder<unknown>[] {
  const out: RawBuilder<unknown>[] = []
  if (search.tenantId !== undefined) out.push(sql`${c.tenant} = ${search.tenantId}`)
  if (search.eventType !== undefined) out.push(typeMatches(c.type, search.eventType))
  if (search.repository !== undefined) out.push(sql`${c.repository} = ${search.repository}`)
  if (search.deliveryId !== undefined) out.push(sql`${c.id} = ${search.deliveryId}`)
  if (search.from) out.push(sql`${c.at} >= ${search.from}`)
  if (search.to) out.push(sql`${c.at} < ${search.to}`)
  return out
}

function and(conditions: RawBuilder<unknown>[]): RawBuilder<unknown> {
  return conditions.length === 0 ? sql`true` : sql.join(conditions, sql` AND `)
}

/**
 * Stored events (`webhook_events`), tool by tool through the (tool_id, received_at) index: each tool gives at
 * most `take` rows from its newest, so the merge reads `tools × take` index entries, never the table.
 */
function storedPart(search: EventSearch, take: number, forwarding: RawBuilder<unknown>): RawBuilder<unknown> {
  const where = common(search, { tenant: sql`e.tenant_id`, type: sql`e.event_type`, repository: sql`e.repository`, id: sql`e.id`, at: sql`e.received_at` })
  where.unshift(sql`e.tool_id = t.tool_id`)
  const cursor = search.cursor
  if (cursor) {
    // the first bound lets the index stop early; the row comparison is the exact keyset position
    where.push(sql`e.received_at <= ${cursor.at}::timestamptz`)
    where.push(sql`(e.received_at, e.tool_id, e.id) < (${cursor.at}::timestamptz, ${cursor.toolId}::text, ${cursor.deliveryId}::text)`)
  }
  const toolWhere: RawBuilder<unknown>[] = [sql`t.tool_id IS NOT NULL`]
  const notDeadLettered = sql`NOT EXISTS (SELECT 1 FROM webhook_dlq o WHERE o.tool_id = e.tool_id AND o.event_id = e.id AND o.status IN ${OPEN})`
  if (search.status === 'forwarded') where.push(sql`e.forwarded_at IS NOT NULL`, notDeadLettered)
  if (search.status === 'pending_delivery' || search.status === 'stored') {
    where.push(sql`e.forwarded_at IS NULL`, notDeadLettered)
    // whether a tool forwards decides between the two, so whole tools drop out before their index is read
    toolWhere.push(search.status === 'stored' ? sql`NOT (t.tool_id = ANY(${forwarding}))` : sql`t.tool_id = ANY(${forwarding})`)
  }
  return sql`SELECT e.tool_id, e.id AS delivery_id, e.event_type, e.tenant_id, e.repository,
      CASE WHEN d.status = 'failed' THEN 'failed' WHEN d.status IS NOT NULL THEN 'dead_lettered'
        WHEN e.forwarded_at IS NOT NULL THEN 'forwarded' WHEN e.tool_id = ANY(${forwarding}) THEN 'pending_delivery' ELSE 'stored' END AS status,
      e.received_at, e.stream_id, e.forwarded_at, d.id AS dlq_id, d.failed_at, e.received_at AS at
    FROM tools t CROSS JOIN LATERAL (
      SELECT e.tool_id, e.id, e.event_type, e.tenant_id, e.repository, e.received_at, e.stream_id, e.forwarded_at FROM webhook_events e
      WHERE ${and(where)} ORDER BY e.received_at DESC, e.id DESC LIMIT ${take}) e
    LEFT JOIN LATERAL (SELECT d.id, d.status, d.failed_at FROM webhook_dlq d
      WHERE d.tool_id = e.tool_id AND d.event_id = e.id AND d.status IN ${OPEN} ORDER BY d.id DESC LIMIT 1) d ON true
    WHERE ${and(toolWhere)}`
}

/**
 * Open dead letters (`webhook_dlq`): with `onlyUnstored`, those of events never stored (the stored ones come
 * from `storedPart`); otherwise every open row with one of `statuses`, stored or not. The DLQ holds only the
 * events that need a person, so these rows are sorted, not scanned in order.
 */
function dlqPart(search: EventSearch, take: number, statuses: readonly string[], onlyUnstored: boolean): RawBuilder<unknown> {
  const at = sql`coalesce(e.received_at, d.failed_at)`
  const type = sql`coalesce(e.event_type, d.event->>'event_type')`
  const tenant = sql`coalesce(e.tenant_id, d.event->>'tenant_id')`
  const repository = sql`coalesce(e.repository, d.event->>'repository', '')`
  const where = common(search, { tenant, type, repository, id: sql`d.event_id`, at })
  where.unshift(sql`d.status IN (${sql.join(statuses)})`)
  if (search.toolId !== undefined) where.push(sql`d.tool_id = ${search.toolId}`)
  if (onlyUnstored) where.push(sql`e.id IS NULL`)
  const cursor = search.cursor
  if (cursor) where.push(sql`(${at}, d.tool_id, d.event_id) < (${cursor.at}::timestamptz, ${cursor.toolId}::text, ${cursor.deliveryId}::text)`)
  return sql`SELECT * FROM (SELECT d.tool_id, d.event_id AS delivery_id, ${type} AS event_type, ${tenant} AS tenant_id, ${repository} AS repository,
      CASE WHEN d.status = 'failed' THEN 'failed' ELSE 'dead_lettered' END AS status,
      e.received_at, e.stream_id, e.forwarded_at, d.id AS dlq_id, d.failed_at, ${at} AS at
    FROM webhook_dlq d LEFT JOIN webhook_events e ON e.tool_id = d.tool_id AND e.id = d.event_id
    WHERE ${and(where)} ORDER BY at DESC, d.tool_id DESC, d.event_id DESC LIMIT ${take}) dlq`
}

/**
 * The SQL of one search page (`limit + 1` rows, to know whether another page follows). Exported for the
 * query-plan test and the latency script; callers use `searchEvents`.
 *
 * @example
 * const { rows } = await searchEventsQuery({ limit: 50 }, []).execute(db)
 */
export function searchEventsQuery(search: EventSearch, staticForwardingTools: readonly string[]): RawBuilder<Row> {
  const take = search.limit + 1
  // a tool forwards when its stored config (webhook_tools) or the config file says store_and_forward
  const forwarding = sql`ARRAY(SELECT id FROM webhook_tools WHERE processing_mode = 'store_and_forward') || ${[...staticForwardingTools]}::text[]`
  const parts = search.status === 'dead_lettered' ? [dlqPart(search, take, ['pending', 'retrying'], false)]
    : search.status === 'failed' ? [dlqPart(search, take, ['failed'], false)]
      : search.status !== undefined ? [storedPart(search, take, forwarding)]
        : [storedPart(search, take, forwarding), dlqPart(search, take, ['pending', 'retrying', 'failed'], true)]
  return sql<Row>`WITH RECURSIVE tools(tool_id) AS (${toolsOf(search)})
    SELECT x.tool_id, x.delivery_id, x.event_type, x.tenant_id, x.repository, x.status, x.received_at, x.stream_id, x.forwarded_at,
      x.dlq_id, x.failed_at, to_char(x.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at_key
    FROM (${sql.join(parts, sql` UNION ALL `)}) x
    ORDER BY x.at DESC, x.tool_id DESC, x.delivery_id DESC LIMIT ${take}`
}

/**
 * One page of events matching `search`, newest first by search time: `received_at` for a stored event,
 * the DLQ row's `failed_at` for a dead letter that was never stored. Pages follow a keyset cursor on (search
 * time, tool id, delivery id), so events inserted while you page never repeat or push others out of view.
 * `staticForwardingTools` are the config file's store_and_forward tools (the database's are read from
 * `webhook_tools`). A search running longer than `timeoutMs` (10 s) is stopped with permanent PipelineError
 * `EVENT_SEARCH_TIMEOUT`; rejects with `DATABASE_UNAVAILABLE` when PostgreSQL cannot be reached.
 *
 * @example
 * const page = await searchEvents(db, parseEventSearch({ tool: 'gh-main', status: 'pending_delivery' }))
 * page.next_cursor // pass back as `cursor` for the next page
 */
export async function searchEvents(db: Kysely<Database>, search: EventSearch, staticForwardingTools: readonly string[] = [],
  timeoutMs = SEARCH_TIMEOUT_MS): Promise<EventPage> {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`searchEvents: "timeoutMs" must be a positive integer; got ${timeoutMs}`)
  let rows: Row[]
  try {
    // a filter that keeps almost nothing, without a time range, reads a tool's (or every tool's) whole history:
    // bound it, so one admin's broad search cannot hold a connection and the disks for minutes
    rows = await db.transaction().execute(async (trx) => {
      await sql.raw(`SET LOCAL statement_timeout = ${timeoutMs}`).execute(trx)
      return (await searchEventsQuery(search, staticForwardingTools).execute(trx)).rows
    })
  } catch (err) {
    if (sqlState(err) === '57014') {
      throw new PipelineError('permanent', 'EVENT_SEARCH_TIMEOUT', `the search ran longer than ${timeoutMs} ms and was stopped; ` +
        'narrow it with a time range ("from", "to") and a tool, which the indexes serve')
    }
    throw unavailableOr(err, 'searching events')
  }
  const events = rows.slice(0, search.limit).map(({ at_key: _key, dlq_id: dlqId, failed_at: failedAt, ...r }) =>
    (dlqId === null || failedAt === null ? r : { ...r, dlq_id: Number(dlqId), failed_at: failedAt }))
  const last = rows[search.limit - 1]
  return {
    events,
    next_cursor: rows.length > search.limit && last ? encodeSearchCursor({ at: last.at_key, toolId: last.tool_id, deliveryId: last.delivery_id }) : null,
  }
}
