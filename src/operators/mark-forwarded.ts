import type { Kysely } from 'kysely'
import type { Envelope } from '../core/envelope.js'
import { isPipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { EventStore } from '../db/event-store.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { HoldOptions } from './hold.js'

/** Options of `markForwarded`. */
export interface MarkForwardedOptions {
  readonly db: Kysely<Database>
  /** Passed to the infrastructure hold (PostgreSQL down). */
  readonly hold?: HoldOptions
}

const forwarded = (env: Envelope): boolean => env.outcome === 'forwarded' && !env.failure

/**
 * Sets `forwarded_at` on the rows of envelopes whose outcome is `forwarded`, one UPDATE per batch, before they are
 * settled; a batch with nothing forwarded passes at once. PostgreSQL down holds the batch. A crash before this step forwards
 * the event again on redelivery (at-least-once: receivers dedupe on the `webhook-id` header).
 *
 * @example
 * batches$.pipe(retryBackoff({ step: forwardStep({ sink }) }), markForwarded({ db }))
 */
export function markForwarded<E extends Envelope>(options: MarkForwardedOptions): BatchStage<E> {
  const store = new EventStore({ db: options.db })
  const mark = async (envs: readonly E[], marked: readonly E[]): Promise<readonly E[]> => {
    try {
      await store.markForwarded(marked.map((env) => env.message.event))
      return envs
    } catch (err) {
      // infrastructure holds (rethrown); a refused UPDATE fails these envelopes instead of ending the stream
      if (!isPipelineError(err) || err.kind !== 'permanent') throw err
      const failed = new Set(marked)
      return envs.map((env) => (failed.has(env) ? { ...env, outcome: undefined, failure: err } : env))
    }
  }
  return batchStep((envs) => {
    const marked = envs.filter(forwarded)
    return marked.length === 0 ? envs : mark(envs, marked)
  }, options.hold ? { hold: options.hold } : {})
}
