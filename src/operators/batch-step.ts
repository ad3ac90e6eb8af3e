import { mergeMap, of, type Observable, type OperatorFunction } from 'rxjs'
import { holdWhileDown, type HoldOptions } from './hold.js'

/**
 * A step of a batch-native chain: it takes the batch one read returned (every envelope with its ack handle and
 * outcome) and emits it once, as one batch again. Every operator of the webhook and delivery pipelines has
 * this shape; `batchStep` and `perEvent` build one.
 */
export type BatchStage<A, B = A> = OperatorFunction<readonly A[], readonly B[]>

/** Options of `batchStep`. */
export interface BatchStepOptions {
  /**
   * Batches in the step at once (the `mergeMap` limit). 1 keeps batches in arrival order, which per-key order
   * (`orderBy`) needs. @defaultValue 1
   */
  readonly concurrency?: number
  /** Passed to the infrastructure hold: a PostgreSQL or Redis outage holds the batch and runs `fn` again. */
  readonly hold?: HoldOptions
}

/**
 * Makes a batched step from `fn`, which gets one batch and returns it derived (same length, same order,
 * envelopes derived and never mutated). An infrastructure `PipelineError` thrown by `fn` holds the batch and
 * runs `fn` again once the outage is over (`holdWhileDown`); any other error ends the stream. When `fn` returns
 * an array rather than a promise (nothing to do for this batch: no failure to dead-letter, nothing forwarded),
 * the batch passes on in the same turn with no round trip and no timer.
 *
 * @example
 * const stamp = batchStep(async (envs) => {
 *   const open = envs.filter((env) => !isDone(env))
 *   if (open.length === 0) return envs          // nothing to do: passes on at once
 *   await audit.write(open.map((env) => env.message.event.id))
 *   return envs
 * }, { hold: { onHold } })
 * batches$.pipe(stamp)
 */
export function batchStep<A, B = A>(
  fn: (envs: readonly A[]) => readonly B[] | Promise<readonly B[]>,
  options: BatchStepOptions = {},
): BatchStage<A, B> {
  if (typeof fn !== 'function') throw new TypeError('batchStep: "fn" must be a function (envs) => envs or Promise<envs>')
  const concurrency = options.concurrency ?? 1
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`batchStep: "concurrency" must be an integer of at least 1; got ${concurrency}`)
  }
  const hold = options.hold
  return mergeMap((envs: readonly A[]): Observable<readonly B[]> => {
    let first: readonly B[] | Promise<readonly B[]>
    try {
      first = fn(envs)
    } catch (err) {
      first = Promise.reject(err)
    }
    if (!isPromise(first)) return of(first)
    // the first run has started already; a hold runs fn again after each infrastructure failure
    let started: Promise<readonly B[]> | undefined = first
    return holdWhileDown(async () => {
      const run = started ?? fn(envs)
      started = undefined
      return run
    }, hold)
  }, concurrency)
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function'
}
