import { Observable, Subject, type OperatorFunction } from 'rxjs'

/** Options of `orderByKey`. */
export interface OrderByKeyOptions<T> {
  /**
   * The ordering key of an item, e.g. `(env) => env.message.event.repository`. It must give the same key for an
   * item the inner steps emit as for the item that went in (derive it from `message.event`, which steps keep).
   */
  readonly key: (item: T) => string
  /** Called when the key function throws; the item then gets the key `""` (all such items in one queue). */
  readonly onKeyError?: (err: unknown, item: T) => void
}

/**
 * Runs `inner` sequentially per key and in parallel across keys: an item enters `inner` only once the previous
 * item with the same key came out of it, so items with one key leave in the order they arrived, while items
 * with other keys overtake them. Waiting items sit in a queue per key; a key's queue is released as soon as it is
 * empty, so memory holds only keys with work in flight. Nothing here caps how many items wait: the source's
 * credit does (`maxInFlight` of `fromRedisStream`), as every waiting message is unsettled.
 *
 * `inner` must emit exactly one item per item it receives (every step of the webhook pipeline does: nothing
 * disappears). An item it swallows blocks its key until the stream ends.
 *
 * @example
 * // per-event steps in key order, lifted to a batch stage (what retryBackoff({ orderBy }) does)
 * batches$.pipe(perEvent(orderByKey({ key: (env: Envelope) => env.message.event.repository }, mergeMap(forwardOne, 16)), { shared: true }))
 */
export function orderByKey<T, R>(options: OrderByKeyOptions<T>, inner: OperatorFunction<T, R>): OperatorFunction<T, R> {
  if (typeof options?.key !== 'function') throw new TypeError('orderByKey: "key" must be a function of an item returning its ordering key')
  if (typeof inner !== 'function') throw new TypeError('orderByKey: the second argument must be an operator (the steps to run in key order)')
  const keyOf = (item: T | R): string => {
    try {
      return String(options.key(item as T))
    } catch (err) {
      options.onKeyError?.(err, item as T)
      return ''
    }
  }
  return (source) => new Observable<R>((subscriber) => {
    // key → items waiting behind the one in flight; a key is present exactly while one of its items is in flight
    const waiting = new Map<string, T[]>()
    let queued = 0
    let sourceDone = false
    const admitted = new Subject<T>()
    // a synchronous inner step would recurse once per queued item; a flat loop keeps the stack shallow
    const toAdmit: T[] = []
    let pumping = false
    const maybeComplete = () => { if (sourceDone && queued === 0 && !pumping) admitted.complete() }
    const admit = (item: T) => {
      toAdmit.push(item)
      if (pumping) return
      pumping = true
      while (toAdmit.length > 0) admitted.next(toAdmit.shift() as T)
      pumping = false
      maybeComplete()
    }

    const innerSub = admitted.pipe(inner).subscribe({
      next: (out) => {
        const key = keyOf(out)
        const queue = waiting.get(key)
        subscriber.next(out)
        if (queue === undefined) return
        const next = queue.shift()
        if (next === undefined) {
          waiting.delete(key)
          return
        }
        queued -= 1
        admit(next)
      },
      error: (err) => subscriber.error(err),
      complete: () => subscriber.complete(),
    })
    const sourceSub = source.subscribe({
      next: (item) => {
        const key = keyOf(item)
        const queue = waiting.get(key)
        if (queue !== undefined) {
          queue.push(item)
          queued += 1
          return
        }
        waiting.set(key, [])
        admit(item)
      },
      error: (err) => subscriber.error(err),
      complete: () => { sourceDone = true; maybeComplete() },
    })
    return () => {
      sourceSub.unsubscribe()
      innerSub.unsubscribe()
      waiting.clear()
    }
  })
}
