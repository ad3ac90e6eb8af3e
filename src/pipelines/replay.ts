import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { PipelineError } from '../core/errors.js'
import { acceptsEventType } from '../core/destination.js'
import type { StreamEvent } from '../core/event.js'
import { destinationsOf, type ToolConfig, type ToolLookup } from '../core/tool.js'
import { appendAudit } from '../db/audit-log.js'
import type { Database, DeliveryStates } from '../db/database.js'
import { unavailableOr } from '../db/database-error.js'
import { searchEvents } from '../db/event-search.js'
import { decodeSearchCursor, MAX_SEARCH_LIMIT, parseEventSearch, SEARCH_PARAMETERS, type EventSearch, type SearchCursor } from '../db/event-search-filter.js'
import { enqueueDeliveries, REPLAY_FIELD, type EventDeliveries } from '../sources/enqueue-deliveries.js'
import { DEFAULT_KEYS, replayKey, type StreamKeys } from '../sources/keys.js'

/** Which stored events a replay sends again: an event search without its page. */
export type ReplayFilter = Omit<EventSearch, 'limit' | 'cursor'>

/** One replay as asked for: the events, where to (one destination, or each event's own), and how sure the asker is. */
export interface ReplayRequest {
  readonly filter: ReplayFilter
  /** Only this destination of each event's tool. @defaultValue every destination of the event's tool */
  readonly destination?: string
  /** Count only; send nothing. */
  readonly dryRun: boolean
  /** The asker confirmed a replay of more than `confirmOver` events. */
  readonly confirm: boolean
}

/** The parameters of a replay request: the search filters (no page) and `destination`, `dry_run`, `confirm`. */
export const REPLAY_PARAMETERS: readonly string[] = Object.freeze([
  ...SEARCH_PARAMETERS.filter((p) => p !== 'limit' && p !== 'cursor'), 'destination', 'dry_run', 'confirm',
])

/** Bounds of replays: the most events one replay may send, and how many it may send without a confirmation. */
export interface ReplayLimits {
  /** @defaultValue 100000 (REPLAY_MAX_EVENTS) */
  readonly maxEvents: number
  /** @defaultValue 100 (REPLAY_CONFIRM_OVER) */
  readonly confirmOver: number
}

/** The limits replays have unless configured otherwise. */
export const DEFAULT_REPLAY_LIMITS: ReplayLimits = Object.freeze({ maxEvents: 100_000, confirmOver: 100 })

/** Where a replay is: what it matched, what it sent, and how it ended. Kept in Redis for `REPLAY_RECORD_TTL_SECONDS`. */
export interface ReplayRecord {
  readonly id: string
  readonly status: 'running' | 'done' | 'failed'
  readonly actor: string
  /** The filter as given (parameter names of `GET /admin/events`). */
  readonly filter: Readonly<Record<string, string>>
  readonly destination: string | null
  /** Events the filter matched when the replay started. */
  readonly matched: number
  /** Events handed to delivery so far. */
  readonly sent: number
  /**
   * Matched events that were not sent: dead letters never stored (no payload in `webhook_events`), and events
   * with no destination to go to (see `deliveryReplaySender`).
   */
  readonly skipped: number
  readonly started_at: string
  readonly finished_at: string | null
  /** Why a failed replay stopped. */
  readonly error: string | null
}

/** How long a replay's record stays readable after its last change, in seconds (7 days). */
export const REPLAY_RECORD_TTL_SECONDS = 7 * 86_400

/** One stored event to send again, with its fan-out state (which destinations it went to, `null` before any). */
export interface ReplayEvent {
  readonly event: StreamEvent
  readonly deliveries: DeliveryStates | null
}

/**
 * Sends stored events on to delivery again, each marked with the replay's id; resolves with how many it sent
 * (an event that has nowhere to go is not counted). The delivery path (its retries, breakers and rate limits,
 * the attempt log) does the rest.
 */
export type ReplaySend = (events: readonly ReplayEvent[], replay: { readonly id: string; readonly destination?: string }) => Promise<number>

function invalid(message: string): PipelineError {
  return new PipelineError('permanent', 'REPLAY_INVALID', message)
}

function flag(name: string, value: string | undefined): boolean {
  if (value === undefined || value === 'false') return false
  if (value === 'true') return true
  throw invalid(`replay parameter "${name}" must be true or false; got ${JSON.stringify(value.slice(0, 40))}`)
}

/**
 * Reads a replay request from string parameters (`REPLAY_PARAMETERS`); the filters are checked exactly as the
 * event search checks them (`EVENT_FILTER_INVALID`), an unknown parameter or a bad flag is `REPLAY_INVALID`.
 * A replay with no filter at all is refused: say which events, at least with a time range.
 *
 * @example
 * parseReplayRequest({ tool: 'gh-main', from: '2026-11-27T00:00:00Z', destination: 'ci', dry_run: 'true' })
 */
export function parseReplayRequest(input: Readonly<Record<string, string | undefined>>): ReplayRequest {
  const unknown = Object.keys(input).filter((k) => input[k] !== undefined && !REPLAY_PARAMETERS.includes(k))
  if (unknown.length > 0) {
    throw invalid(`unknown replay parameter(s) ${unknown.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}; expected ${REPLAY_PARAMETERS.join(', ')}`)
  }
  const { destination, dry_run: dryRun, confirm, ...filters } = input
  const { limit: _limit, cursor: _cursor, ...parsed } = parseEventSearch(filters)
  const filter = Object.fromEntries(Object.entries(parsed).filter(([, v]) => v !== undefined)) as ReplayFilter
  if (Object.keys(filter).length === 0) {
    throw invalid('a replay needs at least one filter (tool, tenant, event_type, repository, status, delivery_id, from, to); ' +
      'to replay everything of a period, give "from" and "to"')
  }
  if (destination !== undefined && !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(destination)) {
    throw invalid(`replay parameter "destination" must be a destination id (lowercase letters, digits, "-", "_", up to 64); got ${JSON.stringify(destination.slice(0, 70))}`)
  }
  return { filter, ...(destination !== undefined ? { destination } : {}), dryRun: flag('dry_run', dryRun), confirm: flag('confirm', confirm) }
}

/**
 * Counts the events a replay filter matches, reading at most `maxEvents + 1` (so a filter that matches
 * millions costs what the cap costs): `capped` says the count stopped there.
 *
 * @example
 * await countReplay(db, { toolId: 'gh-main', status: 'forwarded' }, 100_000) // { matched: 42, capped: false }
 */
export async function countReplay(db: Kysely<Database>, filter: ReplayFilter, maxEvents: number,
  staticForwardingTools: readonly string[] = []): Promise<{ matched: number; capped: boolean }> {
  let matched = 0
  for await (const page of pages(db, filter, maxEvents + 1, staticForwardingTools)) matched += page.length
  return { matched: Math.min(matched, maxEvents), capped: matched > maxEvents }
}

// the filter's events newest first, in search pages, until `max` are read
async function* pages(db: Kysely<Database>, filter: ReplayFilter, max: number, staticForwardingTools: readonly string[]) {
  let cursor: SearchCursor | undefined
  for (let read = 0; read < max;) {
    const page = await searchEvents(db, { ...filter, limit: Math.min(MAX_SEARCH_LIMIT, max - read), ...(cursor ? { cursor } : {}) }, staticForwardingTools)
    read += page.events.length
    yield page.events
    if (!page.next_cursor) return
    cursor = decodeSearchCursor(page.next_cursor)
  }
}

/** What `startReplay` needs. */
export interface ReplayOptions {
  readonly db: Kysely<Database>
  /** Where the replay's record lives, for `readReplay`. */
  readonly redis: Pick<Redis, 'call'>
  readonly send: ReplaySend
  readonly request: ReplayRequest
  /** The request's parameters as given, kept in the record and the audit row. */
  readonly given: Readonly<Record<string, string>>
  /** Who asked (`admin`, `cli`), for the audit log. */
  readonly actor: string
  /** @defaultValue DEFAULT_REPLAY_LIMITS */
  readonly limits?: ReplayLimits
  readonly staticForwardingTools?: readonly string[]
  /** Told the record after each page of events was sent (e.g. to print progress). */
  readonly onProgress?: (record: ReplayRecord) => void
}

/** What `startReplay` answers: the count for a dry run, or the running replay's first record and its end. */
export type ReplayStart =
  | { readonly dryRun: true; readonly matched: number; readonly capped: boolean; readonly needsConfirm: boolean }
  | { readonly dryRun: false; readonly record: ReplayRecord; readonly finished: Promise<ReplayRecord> }

/**
 * Counts what a replay matches and, unless it is a dry run, starts it: refused with `REPLAY_TOO_LARGE` when
 * the filter matches more than `maxEvents`, and with `REPLAY_CONFIRM_REQUIRED` (saying the count) when it
 * matches more than `confirmOver` without `confirm`. A started replay is audited (who, filter, destination,
 * count) before it sends anything, then sends the matched events page by page through `send`, keeping its
 * record (`readReplay`) up to date; `finished` resolves with the last record and never rejects (a failure is
 * recorded as `failed` with its reason). Events that changed after the count are sent as they are found.
 *
 * @example
 * const start = await startReplay({ db, redis, send, request: parseReplayRequest(query), given: query, actor: 'admin' })
 * if (!start.dryRun) console.log(start.record.id)
 */
export async function startReplay(options: ReplayOptions): Promise<ReplayStart> {
  const limits = options.limits ?? DEFAULT_REPLAY_LIMITS
  const { request } = options
  const statics = options.staticForwardingTools ?? []
  const { matched, capped } = await countReplay(options.db, request.filter, limits.maxEvents, statics)
  const needsConfirm = matched > limits.confirmOver
  if (request.dryRun) return { dryRun: true, matched, capped, needsConfirm }
  if (capped) {
    throw new PipelineError('permanent', 'REPLAY_TOO_LARGE', `the filter matches more than ${limits.maxEvents} events, more than one replay ` +
      'may send (REPLAY_MAX_EVENTS); narrow it with a time range ("from", "to") and replay it in parts')
  }
  if (needsConfirm && !request.confirm) {
    throw new PipelineError('permanent', 'REPLAY_CONFIRM_REQUIRED', `the filter matches ${matched} events, more than ${limits.confirmOver} ` +
      '(REPLAY_CONFIRM_OVER); check the count with a dry run, then send the request again with confirm=true (CLI: --yes)')
  }
  const record: ReplayRecord = {
    id: `rpl_${randomUUID()}`, status: 'running', actor: options.actor, filter: options.given, destination: request.destination ?? null,
    matched, sent: 0, skipped: 0, started_at: new Date().toISOString(), finished_at: null, error: null,
  }
  try {
    await appendAudit(options.db, [{ entity: 'event', action: 'events_replayed', actor: options.actor,
      details: { replay_id: record.id, filter: options.given, destination: record.destination, matched } }])
  } catch (err) {
    throw unavailableOr(err, 'auditing a replay')
  }
  await saveReplay(options.redis, record)
  return { dryRun: false, record, finished: run(options, record, limits, statics) }
}

async function run(options: ReplayOptions, first: ReplayRecord, limits: ReplayLimits, statics: readonly string[]): Promise<ReplayRecord> {
  let record = first
  try {
    for await (const page of pages(options.db, options.request.filter, limits.maxEvents, statics)) {
      const events = await storedEvents(options.db, page.map((e) => ({ toolId: e.tool_id, id: e.delivery_id })), record.id)
      const sent = events.length === 0 ? 0 : await options.send(events, { id: record.id, ...(record.destination ? { destination: record.destination } : {}) })
      record = { ...record, sent: record.sent + sent, skipped: record.skipped + page.length - sent }
      await saveReplay(options.redis, record)
      options.onProgress?.(record)
    }
    record = { ...record, status: 'done', finished_at: new Date().toISOString() }
  } catch (err) {
    record = { ...record, status: 'failed', finished_at: new Date().toISOString(), error: (err as Error).message }
  }
  try {
    await saveReplay(options.redis, record)
  } catch {
    // the record is for reading progress; the replay's fate is in the deliveries and the audit row
  }
  return record
}

// the stored rows of a page's events, as stream events marked with the replay (dead letters never stored have none)
async function storedEvents(db: Kysely<Database>, ids: readonly { toolId: string; id: string }[], replayId: string): Promise<ReplayEvent[]> {
  if (ids.length === 0) return []
  let rows
  try {
    rows = await db.selectFrom('webhook_events')
      .select(['id', 'tool_id', 'tenant_id', 'event_type', 'repository', 'payload', 'received_at', 'deliveries'])
      .where((eb) => eb.or(ids.map((k) => eb.and([eb('tool_id', '=', k.toolId), eb('id', '=', k.id)]))))
      .execute()
  } catch (err) {
    throw unavailableOr(err, 'reading events to replay')
  }
  return rows.map((r) => ({
    event: {
      id: r.id, tool_id: r.tool_id, tenant_id: r.tenant_id, event_type: r.event_type, repository: r.repository, payload: r.payload,
      timestamp: new Date(r.received_at).toISOString(), retry_count: 0, metadata: { replay_id: replayId },
    },
    deliveries: r.deliveries,
  }))
}

/** What `deliveryReplaySender` needs. */
export interface DeliveryReplayOptions {
  readonly redis: Pick<Redis, 'call'>
  readonly tools: ToolLookup
  /** The key set (partition) an event's deliveries go to. @defaultValue DEFAULT_KEYS for every event */
  readonly keysOf?: (event: StreamEvent) => StreamKeys
}

// where a replayed event goes: the chosen destination when it is enabled; else every enabled destination of its
// tool that the fan-out sent it to (or, for one added since, whose event types accept it and that has no JSONata
// filter: a filter is not evaluated again for a replay)
function targetsOf(tool: ToolConfig, item: ReplayEvent, chosen: string | undefined): string[] {
  const all = destinationsOf(tool).filter((d) => d.enabled)
  if (chosen !== undefined) return all.some((d) => d.id === chosen) ? [chosen] : []
  return all.filter((d) => {
    const state = item.deliveries?.[d.id]?.state
    if (state !== undefined) return state === 'pending' || state === 'delivered' || state === 'failed'
    return acceptsEventType(d, item.event.event_type) && d.filter === undefined
  }).map((d) => d.id)
}

/**
 * The `ReplaySend` of the service: writes one entry per (event, destination) to the delivery stream of the
 * event's partition, marked with field `replay_id`, so the delivery pipeline delivers it again even where the
 * pair was delivered before (its idempotency key includes the replay id) and the request carries the
 * `webhook-replay-id` header. Events whose tool is gone or that have no destination to go to are not sent.
 *
 * @example
 * const send = deliveryReplaySender({ redis, tools: registry, keysOf: (e) => partitions.route(e).keys })
 */
export function deliveryReplaySender(options: DeliveryReplayOptions): ReplaySend {
  return async (items, replay) => {
    const byKeys = new Map<StreamKeys, EventDeliveries[]>()
    for (const item of items) {
      const tool = await options.tools.get(item.event.tool_id)
      const destinationIds = tool ? targetsOf(tool, item, replay.destination) : []
      if (destinationIds.length === 0) continue
      const keys = options.keysOf?.(item.event) ?? DEFAULT_KEYS
      const list = byKeys.get(keys) ?? []
      list.push({ toolId: item.event.tool_id, eventId: item.event.id, destinationIds,
        fields: { event: JSON.stringify(item.event), [REPLAY_FIELD]: replay.id } })
      byKeys.set(keys, list)
    }
    let sent = 0
    for (const [keys, events] of byKeys) {
      await enqueueDeliveries({ redis: options.redis, keys, once: false }, events)
      sent += events.length
    }
    return sent
  }
}

async function saveReplay(redis: Pick<Redis, 'call'>, record: ReplayRecord): Promise<void> {
  try {
    await redis.call('SET', replayKey(record.id), JSON.stringify(record), 'EX', REPLAY_RECORD_TTL_SECONDS)
  } catch (err) {
    throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE', `saving replay ${record.id}'s progress failed: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * A replay's record by id, or undefined when there is none (never started, or older than 7 days).
 *
 * @example
 * await readReplay(redis, 'rpl_…') // { status: 'running', matched: 2000, sent: 500, … }
 */
export async function readReplay(redis: Pick<Redis, 'call'>, id: string): Promise<ReplayRecord | undefined> {
  if (!/^rpl_[0-9a-f-]{36}$/.test(id)) return undefined
  const json = (await redis.call('GET', replayKey(id))) as string | null
  return json === null ? undefined : (JSON.parse(json) as ReplayRecord)
}
