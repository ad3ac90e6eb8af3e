import { Observable, type OperatorFunction } from 'rxjs'

/** Options of `batch`. */
export interface BatchOptions<T = unknown> {
  /** Most items in one batch. @defaultValue 500 */
  readonly maxSize?: number
  /**
   * How long (ms) a batch may wait for more items after its first one. With 0 it closes when the current burst
   * ends (after the event-loop turn that delivered it), which groups one XREADGROUP reply without adding delay.
   * @defaultValue 0
   */
  readonly maxWaitMs?: number
  /**
   * Which items make their batch wait `maxWaitMs`; a batch holding none of them closes when its burst ends, as
   * with maxWaitMs 0. For a step whose round trip only some items need (a trickle of forwarded events shares one
   * UPDATE, while other events are not held up). @defaultValue every item
   */
  readonly waitsFor?: (item: T) => boolean
}

/**
 * Groups items into arrays, closed by size or when the burst ends (`maxWaitMs`). Unlike `bufferTime` it never
 * emits empty arrays and runs no timer while idle. Completing flushes the last batch.
 *
 * @example
 * envelopes$.pipe(batch({ maxSize: 500 }), mergeMap((envs) => storeAll(envs), 2))
 */
export function batch<T>(options: BatchOptions<T> = {}): OperatorFunction<T, T[]> {
  const maxSize = options.maxSize ?? 500
  const maxWaitMs = options.maxWaitMs ?? 0
  if (!Number.isInteger(maxSize) || maxSize < 1) throw new RangeError(`batch: "maxSize" must be an integer of at least 1; got ${maxSize}`)
  if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) throw new RangeError(`batch: "maxWaitMs" must be a number of at least 0; got ${maxWaitMs}`)
  const { waitsFor } = options
  return (source) => new Observable<T[]>((subscriber) => {
    let current: T[] = []
    let timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined
    let waiting = false // the timer is maxWaitMs long (else it ends the burst)
    const clear = () => {
      if (timer === undefined) return
      if (waiting) clearTimeout(timer as ReturnType<typeof setTimeout>)
      else clearImmediate(timer as ReturnType<typeof setImmediate>)
      timer = undefined
      waiting = false
    }
    const flush = () => {
      clear()
      if (current.length === 0) return
      const out = current
      current = []
      subscriber.next(out)
    }
    const sub = source.subscribe({
      next: (item) => {
        current.push(item)
        if (current.length >= maxSize) return flush()
        const waits = maxWaitMs > 0 && (waitsFor === undefined || waitsFor(item))
        if (timer !== undefined && (waiting || !waits)) return
        clear()
        waiting = waits
        timer = waits ? setTimeout(flush, maxWaitMs) : setImmediate(flush)
      },
      error: (err) => { clear(); subscriber.error(err) },
      complete: () => { flush(); subscriber.complete() },
    })
    return () => { clear(); sub.unsubscribe() }
  })
}
