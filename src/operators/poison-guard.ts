import { map } from 'rxjs'
import { isDone, type Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import type { BatchStage } from './batch-step.js'

/** Options of `poisonGuard`. */
export interface PoisonGuardOptions {
  /** An entry delivered more often than this is poison. @defaultValue 10 */
  readonly maxDeliveries?: number
}

/**
 * Fails entries the group has delivered more than `maxDeliveries` times (an event that crashes the process
 * comes back after every restart) with code `POISON`, so they go to the DLQ before any other step runs.
 * Put it first in the chain.
 *
 * @example
 * fromRedisStreamBatches(source).pipe(map((msgs) => msgs.map(toEnvelope)), poisonGuard({ maxDeliveries: 10 }), dedupe({ redis }), …)
 */
export function poisonGuard<E extends Envelope>(options: PoisonGuardOptions = {}): BatchStage<E> {
  const maxDeliveries = options.maxDeliveries ?? 10
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) {
    throw new RangeError(`poisonGuard: "maxDeliveries" must be an integer of at least 1; got ${maxDeliveries}`)
  }
  const poison = (env: E) => env.message.deliveryCount > maxDeliveries && !isDone(env)
  const guard = (env: E): E => {
    if (!poison(env)) return env
    const { deliveryCount, streamId, stream, event } = env.message
    const failure = new PipelineError('permanent', 'POISON',
      `stream ${stream} entry ${streamId} (event ${event.id}) was delivered ${deliveryCount} times, more than ` +
      `maxDeliveries ${maxDeliveries}; it likely crashes or stalls the worker, so it is dead-lettered unprocessed — inspect it with \`hookstream dlq show\``)
    return { ...env, failure }
  }
  // a batch of first deliveries (the usual case) passes as it is
  return map((envs) => (envs.some(poison) ? envs.map(guard) : envs))
}
