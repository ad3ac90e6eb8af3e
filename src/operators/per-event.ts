import { from, map, mergeMap, of, toArray, type Observable, type OperatorFunction } from 'rxjs'
import type { Envelope, StreamMessage } from '../core/envelope.js'
import type { BatchStage } from './batch-step.js'

/** Options of `perEvent`. */
export interface PerEventOptions<A extends Envelope> {
  /** Batches in the step at once. 1 keeps batches in arrival order (what `orderBy` needs). @defaultValue 1 */
  readonly concurrency?: number
  /**
   * Envelopes the step has nothing to do for; they pass by it unchanged and, when the whole batch is skipped, the
   * batch passes on at once without entering `op`. @defaultValue none: every envelope enters `op`
   */
  readonly skip?: (env: A) => boolean
  /**
   * Told about each message `op` did not emit an envelope for (a `filter` in a custom operator). The message is
   * released for redelivery (`nack`) and leaves the batch, so its credit is not lost; an entry dropped on every
   * delivery ends in the DLQ through `poisonGuard`. @defaultValue none
   */
  readonly onDropped?: (message: StreamMessage) => void
}

/**
 * Lifts a per-event operator (an `OperatorFunction` from envelope to envelope, e.g. RxJS `map` or
 * `mergeMap(fn, concurrency)`) to a batch stage: each batch's envelopes go through `op` and come out as one
 * batch again, in the batch's order, once `op` completed for all of them. `op` runs anew per batch, so keep
 * long-lived state (a client, a pool) outside it. `op` must emit one envelope per envelope it gets (derived from
 * it: the same `message`); a message it drops is released for redelivery (see `onDropped`).
 *
 * @example
 * const requireTenant = perEvent(map((env: Envelope) => (isDone(env) || allowed.has(env.message.event.tenant_id) ? env
 *   : { ...env, failure: new PipelineError('permanent', 'TENANT_NOT_ALLOWED', 'tenant not allowed') })))
 * batches$.pipe(requireTenant, toDLQ({ db, redis }), settle())
 */
export function perEvent<A extends Envelope, B extends Envelope = A>(
  op: OperatorFunction<A, B>,
  options: PerEventOptions<A> = {},
): BatchStage<A, B> {
  if (typeof op !== 'function') throw new TypeError('perEvent: "op" must be an operator function (env$) => env$')
  const concurrency = options.concurrency ?? 1
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`perEvent: "concurrency" must be an integer of at least 1; got ${concurrency}`)
  }
  const { skip, onDropped } = options
  const rejoin = (envs: readonly A[], outs: readonly B[]): readonly B[] => {
    const byMessage = new Map<StreamMessage, B>()
    for (const out of outs) byMessage.set(out.message, out)
    const batch: B[] = []
    for (const env of envs) {
      // a skipped envelope passes unchanged: the fields op would add are all optional
      const out = skip?.(env) ? (env as unknown as B) : byMessage.get(env.message)
      if (out !== undefined) { batch.push(out); continue }
      env.message.nack()
      onDropped?.(env.message)
    }
    return batch
  }
  return mergeMap((envs: readonly A[]): Observable<readonly B[]> => {
    const open = skip ? envs.filter((env) => !skip(env)) : envs
    if (open.length === 0) return of(envs as unknown as readonly B[])
    return from(open).pipe(op, toArray(), map((outs) => rejoin(envs, outs)))
  }, concurrency)
}
