import { defer, retry, timer, type Observable } from 'rxjs'
import { isPipelineError } from '../core/errors.js'

/** Options of `holdWhileDown`. */
export interface HoldOptions {
  /** First wait (ms) after an infrastructure failure; doubles up to `maxDelayMs`. @defaultValue 100 */
  readonly initialDelayMs?: number
  /** @defaultValue 5000 */
  readonly maxDelayMs?: number
  /** Told when work is held (an infrastructure failure) and when it went through again. */
  readonly onHold?: (held: boolean, err?: Error) => void
}

/**
 * Runs `work` and, while it fails with an infrastructure PipelineError (PostgreSQL or Redis down), waits and
 * runs it again, for as long as it takes: events are held unacked instead of dead-lettered. Other errors pass
 * through. Unsubscribing stops the waiting.
 *
 * @example
 * mergeMap((rows) => holdWhileDown(() => sink.writeReturning(rows), { onHold }))
 */
export function holdWhileDown<T>(work: () => Promise<T>, options: HoldOptions = {}): Observable<T> {
  const initial = options.initialDelayMs ?? 100
  const max = options.maxDelayMs ?? 5000
  let held = false
  return defer(async () => {
    const result = await work()
    if (held) { held = false; options.onHold?.(false) }
    return result
  }).pipe(retry({
    delay: (err: unknown, count: number) => {
      if (!isPipelineError(err) || err.kind !== 'infrastructure') throw err
      if (!held) { held = true; options.onHold?.(true, err) }
      return timer(Math.min(max, initial * 2 ** Math.min(count - 1, 10)))
    },
  }))
}
