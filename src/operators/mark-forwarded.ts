import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs'
import type { Kysely } from 'kysely'
import type { Envelope } from '../core/envelope.js'
import { isPipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { EventStore } from '../db/event-store.js'
import { batch } from './batch.js'
import { holdWhileDown, type HoldOptions } from './hold.js'

/** Options of `markForwarded`. */
export interface MarkForwardedOptions {
  readonly db: Kysely<Database>
  /** Passed to the infrastructure hold (PostgreSQL down). */
  readonly hold?: HoldOptions
  /**
   * How long (ms) a batch holding a forwarded envelope waits for more: forwards finish one by one, and without
   * the wait each would cost its own UPDATE, and the steps after it their own round trips (settle, XACK). Other
   * envelopes pass at the end of their burst. @defaultValue 25
   */
  readonly maxWaitMs?: number
}

const forwarded = (env: Envelope): boolean => env.outcome === 'forwarded' && !env.failure

/**
 * Sets `forwarded_at` on the rows of envelopes whose outcome is `forwarded`, one UPDATE per batch (gathered for
 * up to `maxWaitMs`), before they are settled. PostgreSQL down holds the batch. A crash before this step forwards
 * the event again on redelivery (at-least-once: receivers dedupe on the `webhook-id` header).
 *
 * @example
 * envelopes$.pipe(retryBackoff({ step: forwardStep({ sink }) }), markForwarded({ db }))
 */
export function markForwarded<E extends Envelope>(options: MarkForwardedOptions): MonoTypeOperatorFunction<E> {
  const maxWaitMs = options.maxWaitMs ?? 25
  if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
    throw new RangeError(`markForwarded: "maxWaitMs" must be a number of at least 0 (ms); got ${options.maxWaitMs}`)
  }
  const store = new EventStore({ db: options.db })
  return (source) => source.pipe(
    batch<E>({ maxSize: 500, maxWaitMs, waitsFor: forwarded }),
    concatMap((envs) => {
      const marked = envs.filter(forwarded)
      return holdWhileDown(async () => {
        try {
          await store.markForwarded(marked.map((env) => env.message.event))
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
