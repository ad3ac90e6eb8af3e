import type { Kysely } from 'kysely'
import type { Envelope } from '../core/envelope.js'
import type { PipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { classifyDatabaseError } from '../db/database-error.js'
import { resolveRequeued } from '../db/dlq-store.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { HoldOptions } from './hold.js'

function failAll<E extends Envelope>(envs: readonly E[], which: ReadonlySet<E>, failure: PipelineError): E[] {
  return envs.map((env) => (which.has(env) ? { ...env, outcome: undefined, failure } : env))
}

/** Options of `resolveDLQ`. */
export interface ResolveDLQOptions {
  readonly db: Kysely<Database>
  /** Who resolved, for the audit log. @defaultValue "worker" */
  readonly actor?: string
  /** Told how many DLQ entries a batch resolved (for metrics). */
  readonly onResolved?: (count: number) => void
  /** Passed to the infrastructure hold (PostgreSQL down). */
  readonly hold?: HoldOptions
}

/**
 * Closes the DLQ entries of re-queued events (`retry_count` > 0) that went through this time: their
 * `webhook_dlq` row in status `retrying` becomes `resolved` (with `resolved_at`) and the audit log gets a
 * `dlq_resolved` row, one statement per batch, before the events are settled.
 *
 * @example
 * batches$.pipe(store({ db }), resolveDLQ({ db }), toDLQ({ db, redis }), settle())
 */
export function resolveDLQ<E extends Envelope>(options: ResolveDLQOptions): BatchStage<E> {
  const actor = options.actor ?? 'worker'
  const closes = (env: E) => !env.failure && env.outcome !== undefined && env.outcome !== 'parked' &&
    env.outcome !== 'dead_lettered' && env.message.event.retry_count > 0
  const resolve = async (envs: readonly E[], closing: readonly E[]): Promise<readonly E[]> => {
    const events = closing.map((env) => env.message.event)
    try {
      const resolved = await resolveRequeued(options.db, events, actor)
      if (resolved > 0) options.onResolved?.(resolved)
    } catch (err) {
      const failure = classifyDatabaseError(err, `resolving the DLQ entries of ${closing.length} re-queued events`, 'DLQ_RESOLVE_REJECTED')
      if (failure.kind !== 'permanent') throw failure
      // the stored rows are durable; what failed is closing their DLQ rows, so those events are dead-lettered again
      return failAll(envs, new Set(closing), failure)
    }
    return envs
  }
  // a batch with no re-queued event (the usual case) passes at once
  return batchStep((envs) => {
    const closing = envs.filter(closes)
    return closing.length === 0 ? envs : resolve(envs, closing)
  }, options.hold ? { hold: options.hold } : {})
}
