import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs'
import { sql, type Kysely } from 'kysely'
import type { Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { isDatabaseUnavailable } from '../db/database.js'
import { batch } from './batch.js'
import { holdWhileDown, type HoldOptions } from './hold.js'

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
    const ids = envs.filter((env) => env.message.event.retry_count > 0 && !env.failure &&
      env.outcome && env.outcome !== 'parked' && env.outcome !== 'dead_lettered').map((env) => env.message.event.id)
    if (ids.length === 0) return envs
    try {
      const resolved = await options.db.transaction().execute(async (trx) => {
        const rows = await trx.updateTable('webhook_dlq')
          .set({ status: 'resolved', resolved_at: sql`now()`, updated_at: sql`now()`, next_retry_at: null })
          .where((eb) => eb.and([eb('event_id', '=', eb.fn.any(eb.val(ids))), eb('status', '=', 'retrying')]))
          .returning(['id', 'event_id', 'retry_count']).execute()
        if (rows.length > 0) {
          await trx.insertInto('webhook_audit_log').values(rows.map((r) => ({
            event_id: r.event_id, entity: 'dlq', action: 'dlq_resolved', actor,
            details: JSON.stringify({ dlq_id: r.id, retry_count: r.retry_count }),
          }))).execute()
        }
        return rows.length
      })
      if (resolved > 0) options.onResolved?.(resolved)
    } catch (err) {
      if (isDatabaseUnavailable(err)) {
        throw new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE', `resolving DLQ entries failed: ${(err as Error).message}`, { cause: err })
      }
      throw err
    }
    return envs
  }
  return (source) => source.pipe(
    batch({ maxSize: 500 }),
    concatMap((envs) => holdWhileDown(() => resolve(envs), options.hold)),
    concatMap((envs) => from(envs)),
  )
}
