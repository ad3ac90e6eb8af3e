import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs'
import type { Kysely } from 'kysely'
import type { Envelope } from '../core/envelope.js'
import { isPipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { EventStore as PostgresSink } from '../db/event-store.js'
import { batch } from './batch.js'
import { holdWhileDown, type HoldOptions } from './hold.js'

/** Options of `markForwarded`. */
export interface MarkForwardedOptions {
  readonly db: Kysely<Database>
  /** Passed to the infrastructure hold (PostgreSQL down). */
  readonly hold?: HoldOptions
}

/**
 * Sets `forwarded_at` on the rows of envelopes whose outcome is `forwarded`, one UPDATE per batch, before they
 * are settled. PostgreSQL down holds the batch. A crash before this step forwards the event again on
 * redelivery (at-least-once: receivers dedupe on the `webhook-id` header).
 *
 * @example
 * envelopes$.pipe(retryBackoff({ step: forwardStep({ sink }) }), markForwarded({ db }))
 */
export function markForwarded<E extends Envelope>(options: MarkForwardedOptions): MonoTypeOperatorFunction<E> {
  const sink = new PostgresSink({ db: options.db })
  return (source) => source.pipe(
    batch({ maxSize: 500 }),
    concatMap((envs) => {
      const marked = envs.filter((env) => env.outcome === 'forwarded' && !env.failure)
      return holdWhileDown(async () => {
        try {
          await sink.markForwarded(marked.map((env) => env.message.event))
          return envs
        } catch (err) {
          // infrastructure holds (rethrown); a refused UPDATE fails these envelopes instead of ending the stream
          if (!isPipelineError(err) || err.kind !== 'permanent') throw err
          const failed = new Set(marked)
          return envs.map((env) => (failed.has(env) ? { ...env, outcome: undefined, failure: err } : env))
        }
      }, options.hold)
    }),
    concatMap((envs) => from(envs)),
  )
}
