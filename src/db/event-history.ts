import { sql, type Kysely } from 'kysely'
import type { Database, DeliveryStates, DlqEventFormat, DlqStatus } from './database.js'
import { unavailableOr } from './database-error.js'

/** Where an event stands, in one word: see `EventHistory.state`. */
export type EventState = 'stored' | 'forwarded' | 'dead_lettered' | 'retrying' | 'failed' | 'resolved' | 'discarded'

/** Everything the database knows about one event: (tool id, event id). */
export interface EventHistory {
  readonly event_id: string
  /**
   * `dead_lettered` (an open DLQ row waits for a re-queue), `retrying` (re-queued, not yet back), `failed`
   * (the DLQ gave up; a person decides), `forwarded`, `stored`, `resolved` (a DLQ row closed but no stored
   * row, e.g. purged), `discarded`.
   */
  readonly state: EventState
  readonly tool_id: string
  readonly event_type: string | null
  /** When hookstream accepted it (ingest time). */
  readonly accepted_at: string | null
  /** The `webhook_events` row, when stored. */
  readonly stored: {
    readonly stream_id: string; readonly tenant_id: string; readonly repository: string
    readonly received_at: Date; readonly processed_at: Date; readonly forwarded_at: Date | null
  } | null
  /**
   * The fan-out state per destination id (`pending`, `delivered`, `failed` with its error code, `filtered`,
   * `disabled`), with retries so far; `default` (the tool's forward_url) shows `delivered` once forwarded.
   * Empty when the event went to no destination.
   */
  readonly deliveries: DeliveryStates
  /** Every DLQ row of the event (oldest first). */
  readonly dlq: readonly {
    readonly id: number; readonly status: DlqStatus; readonly event_format: DlqEventFormat; readonly error: string; readonly error_code: string | null
    readonly error_class: string; readonly retry_count: number; readonly failed_at: Date; readonly next_retry_at: Date | null
    readonly resolved_at: Date | null
  }[]
  /** HTTP delivery attempts per destination (`webhook_deliveries`), each destination's attempts oldest first. */
  readonly attempts: readonly { readonly destination_id: string; readonly attempts: readonly DeliveryAttemptRow[] }[]
  /** Audit rows of the event (dead-lettered, re-queued, resolved, discarded …), oldest first. */
  readonly history: readonly { readonly at: Date; readonly entity: string; readonly action: string; readonly actor: string; readonly details: unknown }[]
}

/** One row of `webhook_deliveries` as an event's history shows it. */
export interface DeliveryAttemptRow {
  readonly attempt: number
  readonly started_at: Date
  readonly duration_ms: number
  readonly http_status: number | null
  readonly error_class: string | null
  readonly error_code: string | null
  /** The first 1 KiB of the response body. */
  readonly response_body: string | null
  readonly next_attempt_at: Date | null
}

// the newest attempts of one event at most: a destination that kept failing for days must not make the answer huge
const MAX_ATTEMPTS_SHOWN = 200

/**
 * The tools that have an event with this delivery id (a stored row, a DLQ row or an audit row), sorted.
 * Senders choose delivery ids, so several tools may share one. Backs `GET /admin/events/:id`.
 *
 * @example
 * await toolsWithEvent(db, 'msg_0001') // ['billing', 'gh-main']
 */
export async function toolsWithEvent(db: Kysely<Database>, eventId: string): Promise<string[]> {
  try {
    const rows = await db.selectFrom('webhook_events').select('tool_id').where('id', '=', eventId)
      .union(db.selectFrom('webhook_dlq').select('tool_id').where('event_id', '=', eventId))
      .union(db.selectFrom('webhook_audit_log').select(sql<string>`tool_id`.as('tool_id')).where('event_id', '=', eventId).where('tool_id', 'is not', null))
      .orderBy('tool_id').limit(100).execute()
    return rows.map((r) => r.tool_id)
  } catch (err) {
    throw unavailableOr(err, `looking up the tools of event "${eventId}"`)
  }
}

/**
 * The fate of one event, identified by its tool and its id, from `webhook_events`, `webhook_dlq` and
 * `webhook_audit_log`; undefined when none of them knows it. Backs `GET /admin/tools/:tool/events/:deliveryId`
 * and `hookstream events show <tool> <id>`.
 *
 * @example
 * const fate = await eventHistory(db, 'gh-main', '72d3162e-cc78-11e3-81ab-4c9367dc0958')
 * fate?.state // 'forwarded'
 */
export async function eventHistory(db: Kysely<Database>, toolId: string, eventId: string): Promise<EventHistory | undefined> {
  let stored, dlq, history, attempts
  try {
    [stored, dlq, history, attempts] = await Promise.all([
      db.selectFrom('webhook_events').select(['tool_id', 'tenant_id', 'event_type', 'repository', 'stream_id', 'received_at', 'processed_at', 'forwarded_at', 'deliveries'])
        .where('tool_id', '=', toolId).where('id', '=', eventId).executeTakeFirst(),
      db.selectFrom('webhook_dlq').select(['id', 'tool_id', 'event', 'event_format', 'status', 'error', 'error_code', 'error_class', 'retry_count',
        'failed_at', 'next_retry_at', 'resolved_at']).where('tool_id', '=', toolId).where('event_id', '=', eventId).orderBy('id').execute(),
      db.selectFrom('webhook_audit_log').select(['at', 'entity', 'action', 'actor', 'details'])
        .where('tool_id', '=', toolId).where('event_id', '=', eventId).orderBy('id').execute(),
      db.selectFrom('webhook_deliveries').select(['destination_id', 'attempt', 'started_at', 'duration_ms', 'http_status', 'error_class', 'error_code',
        'response_body', 'next_attempt_at']).where('tool_id', '=', toolId).where('event_id', '=', eventId)
        .orderBy('id', 'desc').limit(MAX_ATTEMPTS_SHOWN).execute(),
    ])
  } catch (err) {
    throw unavailableOr(err, `reading the history of event "${eventId}" of tool "${toolId}"`)
  }
  if (!stored && dlq.length === 0 && history.length === 0 && attempts.length === 0) return undefined
  const attemptsOf = new Map<string, DeliveryAttemptRow[]>()
  for (const { destination_id: destination, ...row } of attempts.reverse()) {
    let list = attemptsOf.get(destination)
    if (!list) attemptsOf.set(destination, (list = []))
    list.push(row)
  }
  const open = dlq.find((d) => d.status === 'pending' || d.status === 'retrying' || d.status === 'failed')
  const last = dlq[dlq.length - 1]
  const state: EventState = open
    ? (open.status === 'pending' ? 'dead_lettered' : open.status)
    : stored ? (stored.forwarded_at ? 'forwarded' : 'stored')
      : last?.status === 'resolved' ? 'resolved' : 'discarded'
  const event = (last?.event ?? null) as { event_type?: unknown; timestamp?: unknown } | null
  const timestamp = typeof event?.timestamp === 'string' ? event.timestamp : null
  return {
    event_id: eventId, state,
    tool_id: toolId,
    event_type: stored?.event_type ?? (typeof event?.event_type === 'string' ? event.event_type : null),
    accepted_at: stored ? new Date(stored.received_at).toISOString() : timestamp,
    stored: stored ? {
      stream_id: stored.stream_id, tenant_id: stored.tenant_id, repository: stored.repository,
      received_at: stored.received_at, processed_at: stored.processed_at, forwarded_at: stored.forwarded_at,
    } : null,
    deliveries: {
      ...(stored?.forwarded_at ? { default: { state: 'delivered' as const, at: new Date(stored.forwarded_at).toISOString() } } : {}),
      ...stored?.deliveries,
    },
    dlq: dlq.map(({ event: _event, tool_id: _tool, ...d }) => ({ ...d, id: Number(d.id) })),
    attempts: [...attemptsOf].map(([destination_id, rows]) => ({ destination_id, attempts: rows })),
    history,
  }
}
