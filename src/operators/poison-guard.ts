import { map, type MonoTypeOperatorFunction } from 'rxjs'
import { isDone, type Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'

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
 * fromRedisStream(source).pipe(map(toEnvelope), poisonGuard({ maxDeliveries: 10 }), dedupe({ redis }), …)
 */
export function poisonGuard<E extends Envelope>(options: PoisonGuardOptions = {}): MonoTypeOperatorFunction<E> {
  const maxDeliveries = options.maxDeliveries ?? 10
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) {
    throw new RangeError(`poisonGuard: "maxDeliveries" must be an integer of at least 1; got ${maxDeliveries}`)
  }
  return map((env) => {
    const { deliveryCount, streamId, stream, event } = env.message
    if (isDone(env) || deliveryCount <= maxDeliveries) return env
    const failure = new PipelineError('permanent', 'POISON',
      `stream ${stream} entry ${streamId} (event ${event.id}) was delivered ${deliveryCount} times, more than ` +
      `maxDeliveries ${maxDeliveries}; it likely crashes or stalls the worker, so it is dead-lettered unprocessed — inspect it with \`hookstream dlq show\``)
    return { ...env, failure }
  })
}
