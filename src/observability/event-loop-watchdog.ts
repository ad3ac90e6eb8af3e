import { performance } from 'node:perf_hooks'

/** Options of `startEventLoopWatchdog`. */
export interface EventLoopWatchdogOptions {
  /** Lag above which the loop counts as stalled. @defaultValue 5000 */
  readonly stallMs?: number
}

/** What the watchdog saw. */
export interface EventLoopState {
  /** The largest lag measured within the last `stallMs`, or how overdue the next tick is now if larger, in ms. */
  readonly lagMs: number
  /** True while the loop is stalled now or was stalled within the last `stallMs`. */
  readonly stalled: boolean
}

/** A running watchdog; `close()` stops its timer (idempotent). */
export interface EventLoopWatchdog {
  state(): EventLoopState
  close(): void
}

/**
 * Measures event-loop lag with an unref'd timer and remembers a stall for `stallMs` after it ended, so a liveness
 * probe answered right after a long synchronous block still reports it.
 *
 * @example
 * const watchdog = startEventLoopWatchdog({ stallMs: 5000 })
 * if (watchdog.state().stalled) res.statusCode = 503
 */
export function startEventLoopWatchdog(options: EventLoopWatchdogOptions = {}): EventLoopWatchdog {
  const stallMs = options.stallMs ?? 5000
  if (!Number.isFinite(stallMs) || stallMs < 10) {
    throw new RangeError(`startEventLoopWatchdog: "stallMs" must be a number of milliseconds of at least 10; got ${stallMs}`)
  }
  const sampleMs = Math.min(500, Math.max(5, Math.floor(stallMs / 5)))
  let expected = performance.now() + sampleMs
  let lastLagMs = 0
  // the largest lag of the last `stallMs`, so a probe answered right after a stall still sees it
  let peakLagMs = 0
  let peakAt = Number.NEGATIVE_INFINITY
  const timer = setInterval(() => {
    const now = performance.now()
    lastLagMs = Math.max(0, now - expected)
    if (lastLagMs >= peakLagMs || now - peakAt > stallMs) {
      peakLagMs = lastLagMs
      peakAt = now
    }
    expected = now + sampleMs
  }, sampleMs)
  timer.unref()
  return {
    state() {
      const now = performance.now()
      const overdueMs = Math.max(0, now - expected)
      const recentMs = now - peakAt <= stallMs ? peakLagMs : lastLagMs
      const lagMs = Math.max(overdueMs, recentMs)
      return { lagMs: Math.round(lagMs * 10) / 10, stalled: lagMs > stallMs }
    },
    close() { clearInterval(timer) },
  }
}
