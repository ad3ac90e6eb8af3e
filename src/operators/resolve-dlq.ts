import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs'
import type { Kysely } from 'kysely'
import type { Envelope } from '../core/envelope.js'
import type { PipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { classifyDatabaseError } from '../db/database-error.js'
import { resolveRequeued } from '../db/dlq-store.js'
import { batch } from './batch.js'
import { holdWhileDown, type HoldOptions } from './hold.js'

function failAll<E extends Envelope>(envs: E[], which: ReadonlySet<E>, failure: PipelineError): E[] {
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
 * envelopes$.pipe(store({ db }), resolveDLQ({ db }), toDLQ({ db, redis }), settle({ redis }))
 */
export function resolveDLQ<E extends Envelope>(options: ResolveDLQOptions): MonoTypeOperatorFunction<E> {
  const actor = options.actor ?? 'worker'
  const resolve = async (envs: E[]): Promise<E[]> => {
    const closing = envs.filter((env) => env.message.event.retry_count > 0 && !env.failure &&
      env.outcome && env.outcome !== 'parked' && env.outcome !== 'dead_lettered')
    if (closing.length === 0) return envs
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
  return (source) => source.pipe(
    batch({ maxSize: 500 }),
    concatMap((envs) => holdWhileDown(() => resolve(envs), options.hold)),
    concatMap((envs) => from(envs)),
  )
}
