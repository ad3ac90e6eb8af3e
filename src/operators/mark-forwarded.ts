import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs'
import type { Kysely } from 'kysely'
import type { Envelope } from '../core/envelope.js'
import type { Database } from '../db/database.js'
import { PostgresSink } from '../sinks/postgres.js'
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
      const events = envs.filter((env) => env.outcome === 'forwarded' && !env.failure).map((env) => env.message.event)
      return holdWhileDown(async () => { await sink.markForwarded(events); return envs }, options.hold)
    }),
    concatMap((envs) => from(envs)),
  )
}
