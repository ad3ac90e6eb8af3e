import type { Kysely } from 'kysely'
import { isPipelineError, PipelineError } from '../core/errors.js'
import { isDatabaseUnavailable, type Database, type DlqStatus } from './database.js'

/** Where an event stands, in one word: see `EventHistory.state`. */
export type EventState = 'stored' | 'forwarded' | 'dead_lettered' | 'retrying' | 'failed' | 'resolved' | 'discarded'

/** Everything the database knows about one event id. */
export interface EventHistory {
  readonly event_id: string
  /**
   * `dead_lettered` (an open DLQ row waits for a re-queue), `retrying` (re-queued, not yet back), `failed`
   * (the DLQ gave up; a person decides), `forwarded`, `stored`, `resolved` (a DLQ row closed but no stored
   * row, e.g. purged), `discarded`.
   */
  readonly state: EventState
  readonly tool_id: string | null
  readonly event_type: string | null
  /** When hookstream accepted it (ingest time). */
  readonly accepted_at: string | null
  /** The `webhook_events` row, when stored. */
  readonly stored: {
    readonly stream_id: string; readonly tenant_id: string; readonly repository: string
    readonly received_at: Date; readonly processed_at: Date; readonly forwarded_at: Date | null
  } | null
  /** Every DLQ row of the event (oldest first). */
  readonly dlq: readonly {
    readonly id: number; readonly status: DlqStatus; readonly error: string; readonly error_code: string | null
    readonly error_class: string; readonly retry_count: number; readonly failed_at: Date; readonly next_retry_at: Date | null
    readonly resolved_at: Date | null
  }[]
  /** Audit rows of the event (dead-lettered, re-queued, resolved, discarded …), oldest first. */
  readonly history: readonly { readonly at: Date; readonly entity: string; readonly action: string; readonly actor: string; readonly details: unknown }[]
}

/**
 * The fate of one event, from `webhook_events`, `webhook_dlq` and `webhook_audit_log`; undefined when none
 * of them knows the id. Backs `GET /admin/events/:id` and `hookstream events show`.
 *
 * @example
 * const fate = await eventHistory(db, '72d3162e-cc78-11e3-81ab-4c9367dc0958')
 * fate?.state // 'forwarded'
 */
export async function eventHistory(db: Kysely<Database>, eventId: string): Promise<EventHistory | undefined> {
  let stored, dlq, history
  try {
    [stored, dlq, history] = await Promise.all([
      db.selectFrom('webhook_events').select(['tool_id', 'tenant_id', 'event_type', 'repository', 'stream_id', 'received_at', 'processed_at', 'forwarded_at'])
        .where('id', '=', eventId).executeTakeFirst(),
      db.selectFrom('webhook_dlq').select(['id', 'tool_id', 'event', 'status', 'error', 'error_code', 'error_class', 'retry_count',
        'failed_at', 'next_retry_at', 'resolved_at']).where('event_id', '=', eventId).orderBy('id').execute(),
      db.selectFrom('webhook_audit_log').select(['at', 'entity', 'action', 'actor', 'details']).where('event_id', '=', eventId).orderBy('id').execute(),
    ])
  } catch (err) {
    if (isPipelineError(err) || !isDatabaseUnavailable(err)) throw err
    throw new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE',
      `PostgreSQL is unreachable while reading the history of event "${eventId}": ${(err as Error).message}; check DATABASE_URL and the server`, { cause: err })
  }
  if (!stored && dlq.length === 0 && history.length === 0) return undefined
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
    tool_id: stored?.tool_id ?? last?.tool_id ?? null,
    event_type: stored?.event_type ?? (typeof event?.event_type === 'string' ? event.event_type : null),
    accepted_at: stored ? new Date(stored.received_at).toISOString() : timestamp,
    stored: stored ? {
      stream_id: stored.stream_id, tenant_id: stored.tenant_id, repository: stored.repository,
      received_at: stored.received_at, processed_at: stored.processed_at, forwarded_at: stored.forwarded_at,
    } : null,
    dlq: dlq.map(({ event: _event, tool_id: _tool, ...d }) => ({ ...d, id: Number(d.id) })),
    history,
  }
}
