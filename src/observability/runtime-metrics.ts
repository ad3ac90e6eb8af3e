import { totalmem } from 'node:os'
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

/** What `registerRuntimeMetrics` returns: a way to stop its observers. */
export interface RuntimeMetrics {
  /** The memory limit reported as `webhook_memory_limit_bytes`. */
  readonly memoryLimitBytes: number
  /** Event-loop delay p99 in seconds since the last scrape (what `webhook_event_loop_lag_seconds` reports). */
  eventLoopLagSeconds(): number
  /** Disconnects the GC observer and disables the event-loop monitor. Idempotent. */
  close(): void
}

/**
 * The memory limit the process runs under: the cgroup limit when there is one (a container's `--memory`),
 * otherwise the machine's total memory.
 *
 * @example
 * detectMemoryLimitBytes() // 536870912 in a container started with --memory 512m
 */
export function detectMemoryLimitBytes(): number {
  const total = totalmem()
  const constrained = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : undefined
  return constrained && constrained > 0 && constrained < total ? constrained : total
}

/**
 * Registers the runtime gauges of the `webhook_*` family on `registry`: memory, GC runs and pauses (from a
 * `PerformanceObserver` on `gc` entries), event-loop lag (from `monitorEventLoopDelay`) and the memory limit.
 *
 * @example
 * const runtime = registerRuntimeMetrics(registry, { memoryLimitBytes: 512 * 1024 ** 2 })
 * runtime.close()
 */
export function registerRuntimeMetrics(registry: Registry, options: { memoryLimitBytes?: number } = {}): RuntimeMetrics {
  const memoryLimitBytes = options.memoryLimitBytes ?? detectMemoryLimitBytes()
  if (!Number.isFinite(memoryLimitBytes) || memoryLimitBytes <= 0) {
    throw new RangeError(`createMetrics: "memoryLimitBytes" must be a positive number of bytes; got ${memoryLimitBytes}`)
  }
  const registers = [registry]

  new Gauge({
    name: 'webhook_memory_allocated_bytes',
    help: 'V8 heap bytes in use by live objects (process.memoryUsage().heapUsed).',
    registers,
    collect() { this.set(process.memoryUsage().heapUsed) },
  })
  new Gauge({
    name: 'webhook_memory_limit_bytes',
    help: 'Memory limit the process runs under (cgroup limit, else total memory, or the memoryLimitBytes option); alerts compare process_resident_memory_bytes with it.',
    registers,
  }).set(memoryLimitBytes)

  const gcRuns = new Counter({ name: 'webhook_gc_runs_total', help: 'Garbage collections run.', registers })
  const gcPause = new Histogram({
    name: 'webhook_gc_pause_duration_seconds',
    help: 'Garbage-collection pause durations.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers,
  })
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcRuns.inc()
      gcPause.observe(entry.duration / 1000)
    }
  })
  observer.observe({ entryTypes: ['gc'] })

  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  let lastLagSeconds = 0
  const eventLoopLagSeconds = () => {
    // percentile() is NaN/0 before the first sample; keep the last value instead of reporting a false zero
    if (delay.count > 0) lastLagSeconds = delay.percentile(99) / 1e9
    return lastLagSeconds
  }
  new Gauge({
    name: 'webhook_event_loop_lag_seconds',
    help: 'Event-loop delay p99 since the previous scrape.',
    registers,
    collect() {
      this.set(eventLoopLagSeconds())
      delay.reset()
    },
  })

  let closed = false
  return {
    memoryLimitBytes,
    eventLoopLagSeconds,
    close() {
      if (closed) return
      closed = true
      try { observer.disconnect() } finally { delay.disable() }
    },
  }
}
