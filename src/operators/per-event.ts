import { from, map, mergeMap, Observable, of, Subject, toArray, type OperatorFunction } from 'rxjs'
import type { Envelope, StreamMessage } from '../core/envelope.js'
import type { BatchStage } from './batch-step.js'

/** Options of `perEvent`. */
export interface PerEventOptions<A extends Envelope> {
  /**
   * Batches in the step at once (not with `shared`, where every batch enters at once and `op`'s own limits
   * bound the work). 1 keeps batches in arrival order. @defaultValue 1
   */
  readonly concurrency?: number
  /**
   * Envelopes the step has nothing to do for; they pass by it unchanged and, when the whole batch is skipped, the
   * batch passes on at once without entering `op`. @defaultValue none: every envelope enters `op`
   */
  readonly skip?: (env: A) => boolean
  /**
   * Told about each message `op` did not emit an envelope for (a `filter` in a custom operator). The message is
   * released for redelivery (`nack`) and leaves the batch, so its credit is not lost; an entry dropped on every
   * delivery ends in the DLQ through `poisonGuard`. Not with `shared`. @defaultValue none
   */
  readonly onDropped?: (message: StreamMessage) => void
  /**
   * Run one subscription of `op` for the life of the stage and feed every batch's envelopes into it, so `op`'s
   * limits (a `mergeMap` concurrency, `orderByKey`'s per-key queues) span batches, and `op` may keep state.
   * `op` must then emit exactly one envelope per envelope (a dropped one holds its batch). @defaultValue false
   */
  readonly shared?: boolean
  /**
   * Once an envelope of a batch came out of `op`, how long (ms) the rest of the batch may take before the ones
   * done go on as a batch of their own (later ones follow the same way). A slow envelope (a destination that
   * hangs until its timeout) then holds only itself, not the acks and credit of its whole batch. Only with
   * `shared`. @defaultValue unset: a batch leaves whole
   */
  readonly splitAfterMs?: number
}

/**
 * Lifts a per-event operator (an `OperatorFunction` from envelope to envelope, e.g. RxJS `map` or
 * `mergeMap(fn, concurrency)`) to a batch stage: each batch's envelopes go through `op` and come out as one
 * batch again, in the batch's order, once `op` is done with all of them. By default `op` runs anew per batch, so
 * keep long-lived state (a client, a pool) outside it, or use `shared`. `op` must emit one envelope per envelope
 * it gets (derived from it: the same `message`); a message it drops is released for redelivery (see
 * `onDropped`).
 *
 * @example
 * // per event: how long each event waited in the stream before this worker read it (ms)
 * const stampLag = perEvent(map((env: Envelope) => ({ ...env, lagMs: env.message.readAtMs - Date.parse(env.message.event.timestamp) })))
 * batches$.pipe(stampLag, store({ db }), toDLQ({ db, redis }), settle())
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
  const { splitAfterMs } = options
  if (splitAfterMs !== undefined && (!options.shared || !Number.isFinite(splitAfterMs) || splitAfterMs < 0)) {
    throw new RangeError(`perEvent: "splitAfterMs" must be a number of at least 0 (ms), with "shared"; got ${splitAfterMs}`)
  }
  if (options.shared) return sharedLift(op, options)
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

// a batch in the shared lift: its envelopes, what came out of op so far, what was passed on already
interface InFlight<A, B> {
  readonly envs: readonly A[]
  readonly outs: Map<StreamMessage, B>
  readonly sent: Set<StreamMessage>
  left: number
  timer: ReturnType<typeof setTimeout> | undefined
}

function sharedLift<A extends Envelope, B extends Envelope>(op: OperatorFunction<A, B>, options: PerEventOptions<A>): BatchStage<A, B> {
  const { skip, splitAfterMs } = options
  return (batches$) => new Observable<readonly B[]>((subscriber) => {
    const owner = new Map<StreamMessage, InFlight<A, B>>()
    let open = 0
    let sourceDone = false
    const input = new Subject<A>()
    // passes on, in batch order, every envelope of the batch that is done and not passed on yet
    const sendDone = (b: InFlight<A, B>) => {
      const part: B[] = []
      for (const env of b.envs) {
        if (b.sent.has(env.message)) continue
        const out = skip?.(env) ? (env as unknown as B) : b.outs.get(env.message)
        if (out === undefined) continue
        b.sent.add(env.message)
        part.push(out)
      }
      if (part.length > 0) subscriber.next(part)
    }
    const maybeComplete = () => {
      if (!sourceDone || open > 0) return
      input.complete()
      subscriber.complete()
    }
    const innerSub = input.pipe(op).subscribe({
      next: (out) => {
        const b = owner.get(out.message)
        if (b === undefined) return
        owner.delete(out.message)
        b.outs.set(out.message, out)
        b.left -= 1
        if (b.left === 0) {
          clearTimeout(b.timer)
          sendDone(b)
          open -= 1
          return maybeComplete()
        }
        if (splitAfterMs !== undefined && b.timer === undefined) {
          b.timer = setTimeout(() => { b.timer = undefined; sendDone(b) }, splitAfterMs)
        }
      },
      error: (err) => subscriber.error(err),
    })
    const sourceSub = batches$.subscribe({
      next: (envs) => {
        const todo = skip ? envs.filter((env) => !skip(env)) : envs
        if (todo.length === 0) return subscriber.next(envs as unknown as readonly B[])
        const b: InFlight<A, B> = { envs, outs: new Map(), sent: new Set(), left: todo.length, timer: undefined }
        open += 1
        for (const env of todo) owner.set(env.message, b)
        for (const env of todo) input.next(env)
      },
      error: (err) => subscriber.error(err),
      complete: () => { sourceDone = true; maybeComplete() },
    })
    return () => {
      sourceSub.unsubscribe()
      innerSub.unsubscribe()
      for (const b of new Set(owner.values())) clearTimeout(b.timer)
      owner.clear()
    }
  })
}
