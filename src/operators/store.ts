import { SpanKind, type Span } from '@opentelemetry/api'
import type { Kysely } from 'kysely'
import { isDone, processingTimeout, type Envelope, type Outcome } from '../core/envelope.js'
import { isPipelineError } from '../core/errors.js'
import { entryPayloadJson } from '../core/stream-entry.js'
import { checkTimeLimit, withTimeLimit } from '../core/time-limit.js'
import type { ToolConfig } from '../core/tool.js'
import type { Database } from '../db/database.js'
import { identityOf } from '../db/event-identity.js'
import { SpanAttributes, SpanNames } from '../observability/attributes.js'
import { endEventSpan, startEventSpan } from '../observability/event-spans.js'
import { EventStore, type EventRow } from '../db/event-store.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { HoldOptions } from './hold.js'

/** What `store` adds: whether the row is in `webhook_events` now. */
export interface Stored { readonly stored?: boolean }

/** Options of `store`. */
export interface StoreOptions {
  readonly db: Kysely<Database>
  /** Batches (one INSERT each per 1,000 rows or 64 MiB of payloads) in flight at once; each takes a pool connection. @defaultValue 2 */
  readonly concurrency?: number
  /** Passed to the infrastructure hold (PostgreSQL down). */
  readonly hold?: HoldOptions
  /**
   * Longest one INSERT batch may take (ms, WORKER_PROCESSING_TIMEOUT). Over it, the batch's events fail as
   * transient (`PROCESSING_TIMEOUT`, dead-lettered for the DLQ's re-queue rounds) and their slot is freed, so a
   * statement stuck behind a lock does not hold them for ever. @defaultValue unset: no limit
   */
  readonly timeoutMs?: number
  /**
   * Record a `webhook.store` span per event (a child of its `webhook.process` span, all spans of one batch
   * covering the same INSERT, with `messaging.batch.message_count`). @defaultValue false (no span work)
   */
  readonly tracing?: boolean
}

const doneOutcome: Record<ToolConfig['processingMode'], Outcome | undefined> = {
  store: 'stored', transform_and_store: 'transformed', store_and_forward: undefined,
}

/**
 * Stores events in `webhook_events` with batched `INSERT … ON CONFLICT (tool_id, id) DO NOTHING`. A row already there
 * makes the event a `duplicate` (in `store_and_forward` mode only once it was forwarded too, so a crash
 * between store and forward still forwards on redelivery). A row PostgreSQL rejects fails alone
 * (`STORE_REJECTED`); PostgreSQL down holds the batch unacked and retries it until the database is back.
 *
 * @example
 * batches$.pipe(extractToolConfig({ tools }), transform(), store({ db }))
 */
export function store<E extends Envelope & { readonly tool?: ToolConfig; readonly transformed?: unknown }>(
  options: StoreOptions,
): BatchStage<E, E & Stored> {
  const events = new EventStore({ db: options.db })
  const concurrency = options.concurrency ?? 2
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`store: "concurrency" must be an integer of at least 1; got ${concurrency}`)
  }

  const timeoutMs = checkTimeLimit('store: "timeoutMs"', options.timeoutMs)
  const timedOut = (envs: readonly E[]): E[] => envs.map((env) => (isDone(env) || !env.tool ? env
    : { ...env, failure: processingTimeout(env.message, timeoutMs as number) }))

  const write = async (envs: readonly E[], open: readonly E[]): Promise<readonly (E & Stored)[]> => {
    const rows: EventRow[] = open.map(({ message: { event, streamId, fields }, transformed }) => {
      // a v2 entry's payload text goes to PostgreSQL as it is: reading event.payload would parse it in Node
      const payloadJson = entryPayloadJson(fields)
      return {
        id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type,
        repository: event.repository, payload: payloadJson === undefined ? event.payload : null, payloadJson,
        transformed, stream_id: streamId, received_at: event.timestamp,
        // the entry's own JSON: PostgreSQL takes the payload from it, so Node does not serialize it again
        eventJson: fields.event,
      }
    })
    const spans = options.tracing ? open.map((env) => startEventSpan(SpanNames.STORE, env, SpanKind.CLIENT, {
      [SpanAttributes.DB_SYSTEM]: 'postgresql', [SpanAttributes.DB_COLLECTION_NAME]: 'webhook_events',
      [SpanAttributes.DB_OPERATION_NAME]: 'INSERT', [SpanAttributes.MESSAGING_BATCH_MESSAGE_COUNT]: open.length,
    })) : undefined
    try {
      const result = await decide(open, rows)
      spans?.forEach((span, i) => endEventSpan(span, result.get(open[i] as E)?.failure))
      return envs.map((env) => result.get(env) ?? env)
    } catch (err) {
      // PostgreSQL down: this attempt's spans end failed; the hold retries the batch with new ones
      spans?.forEach((span: Span) => endEventSpan(span, err as Error))
      throw err
    }
  }

  const decide = async (open: readonly E[], rows: EventRow[]): Promise<Map<E, E & Stored>> => {
    const { failures, inserted } = await events.writeReturning(rows)
    // a second copy of an event this batch inserted is a duplicate: the first copy forwards it
    const insertedNow = new Set(open.filter((_, i) => inserted.has(i)).map((env) => identityOf(env.message.event)))
    // rows that were there already: in forward mode, forward unless that happened too
    const existingForward = open.filter((env, i) => !inserted.has(i) && !failures.has(i) &&
      env.tool?.processingMode === 'store_and_forward' && !insertedNow.has(identityOf(env.message.event))).map((env) => env.message.event)
    // a refused SELECT (not an unreachable server, which holds) forwards again: at-least-once, never lost
    const forwarded = await events.forwardedAmong(existingForward).catch((err: unknown) => {
      if (isPipelineError(err) && err.kind === 'permanent') return new Set<string>()
      throw err
    })
    const decided = new Map<E, E & Stored>()
    open.forEach((env, i) => {
      const failure = failures.get(i)
      if (failure) return decided.set(env, { ...env, failure })
      const mode = (env.tool as ToolConfig).processingMode
      if (inserted.has(i)) {
        const outcome = doneOutcome[mode]
        return decided.set(env, { ...env, stored: true, ...(outcome ? { outcome } : {}) })
      }
      const identity = identityOf(env.message.event)
      const pendingForward = mode === 'store_and_forward' && !forwarded.has(identity) && !insertedNow.has(identity)
      return decided.set(env, { ...env, stored: true, ...(pendingForward ? {} : { outcome: 'duplicate' as const }) })
    })
    return decided
  }

  return batchStep((envs) => {
    const open = envs.filter((env) => !isDone(env) && env.tool)
    return open.length === 0 ? envs : withTimeLimit(() => write(envs, open), timeoutMs, () => timedOut(envs))
  }, { concurrency, ...(options.hold ? { hold: options.hold } : {}) })
}
