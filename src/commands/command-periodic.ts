import { exhaustMap, from, interval, tap, type Subscription } from 'rxjs'
import type { ExecuteCommand, PeriodicContext, WorkerDefinition, WorkerLogger } from './command-worker.js'

/** What `info()` tells about a worker's periodic work. */
export interface PeriodicInfo {
  /** Interval between ticks, in ms. */
  readonly everyMs: number
  /** Runs started so far. */
  readonly runs: number
  /** Ticks skipped because the previous run was still going. */
  readonly skippedTicks: number
  /** When the last finished run started. */
  readonly lastRunAt: Date | null
  readonly lastDurationMs: number | null
  /** Message of the last run's error; null when it succeeded. */
  readonly lastError: string | null
}

/** A running periodic schedule. */
export interface PeriodicRunner {
  info(): PeriodicInfo
  /** Stops the ticks and waits (up to `timeoutMs`) for a run in progress; the run's signal has fired by then. */
  stop(timeoutMs: number): Promise<void>
}

/**
 * Starts `worker.periodic` on its interval: the first run one interval after start, never two runs at once (a tick
 * during a run is skipped and counted), a run longer than `slowMs` logged as a warning, errors logged and kept for
 * `info()`. `signal` is the worker's shutdown signal, handed to every run.
 *
 * @example
 * const runner = startPeriodic(worker, shutdown.signal, logger, (command, payload) => app.execute(command, payload))
 * … ; shutdown.abort(); await runner.stop(10_000)
 */
export function startPeriodic<S>(
  worker: WorkerDefinition<S>, signal: AbortSignal, logger: WorkerLogger, execute: ExecuteCommand, state: S = worker.state,
): PeriodicRunner {
  const periodic = worker.periodic
  if (!periodic) throw new TypeError(`startPeriodic: worker "${worker.name}" has no "periodic" work`)
  let runs = 0
  let skippedTicks = 0
  let lastRunAt: Date | null = null
  let lastDurationMs: number | null = null
  let lastError: string | null = null
  let running: Promise<void> | undefined
  const ctx: PeriodicContext<S> = { worker: worker.name, state, signal, logger, execute }

  const runOnce = async (): Promise<void> => {
    const startedAt = new Date()
    const t0 = performance.now()
    runs += 1
    let error: string | null = null
    try {
      await periodic.run(ctx)
    } catch (err) {
      error = (err as Error)?.message ?? String(err)
      if (!signal.aborted) logger.warn({ worker: worker.name, err }, `periodic work of worker "${worker.name}" failed: ${error}`)
    }
    const durationMs = Math.round(performance.now() - t0)
    lastRunAt = startedAt
    lastDurationMs = durationMs
    lastError = error
    if (durationMs > periodic.slowMs) {
      logger.warn({ worker: worker.name, durationMs, slowMs: periodic.slowMs },
        `periodic work of worker "${worker.name}" took ${durationMs} ms, more than ${periodic.slowMs} ms (every ${periodic.everyMs} ms); ` +
        'make the run shorter or raise "periodic.slowMs"')
    }
  }

  const subscription: Subscription = interval(periodic.everyMs).pipe(
    // exhaustMap drops ticks that come while a run is in flight, so count them here first
    tap(() => { if (running) skippedTicks += 1 }),
    exhaustMap(() => from(running = runOnce().finally(() => { running = undefined }))),
  ).subscribe()

  return {
    info: () => ({ everyMs: periodic.everyMs, runs, skippedTicks, lastRunAt, lastDurationMs, lastError }),
    async stop(timeoutMs) {
      subscription.unsubscribe()
      const current = running
      if (!current) return
      let timer: NodeJS.Timeout | undefined
      await Promise.race([current, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })])
      clearTimeout(timer)
    },
  }
}
