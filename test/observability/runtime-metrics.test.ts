import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'
import { Registry } from 'prom-client'
import { detectMemoryLimitBytes, registerRuntimeMetrics } from '../../src/observability/runtime-metrics.js'
import { parseExposition } from './exposition.js'
import { eventually } from '../helpers/events.js'

const Runtime = suite('runtime metrics')

Runtime('counts garbage collections and their pauses', async () => {
  const registry = new Registry()
  const runtime = registerRuntimeMetrics(registry)
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    gc(); gc()
    // PerformanceObserver delivers entries asynchronously
    await eventually('two collections observed', async () => (parseExposition(await registry.metrics()).get('webhook_gc_runs_total') ?? 0) >= 2)
    const s = parseExposition(await registry.metrics())
    assert.ok((s.get('webhook_gc_runs_total') ?? 0) >= 2)
    assert.is(s.get('webhook_gc_pause_duration_seconds_count'), s.get('webhook_gc_runs_total'))
    assert.ok((s.get('webhook_memory_allocated_bytes') ?? 0) > 0)
  } finally {
    runtime.close()
  }
})

Runtime('reports a blocked event loop as lag, then resets after the scrape', async () => {
  const registry = new Registry()
  const runtime = registerRuntimeMetrics(registry)
  try {
    await sleep(30)
    const until = Date.now() + 150
    while (Date.now() < until) { /* block the loop on purpose */ }
    await sleep(30)
    const lag = parseExposition(await registry.metrics()).get('webhook_event_loop_lag_seconds') ?? 0
    assert.ok(lag >= 0.1, `lag ${lag}`)
    // each scrape resets the peak: once the loop ran freely between two scrapes, the lag reads small again
    await eventually('lag below 0.1 s after a reset', async () => {
      await sleep(50)
      return (parseExposition(await registry.metrics()).get('webhook_event_loop_lag_seconds') ?? 1) < 0.1
    })
  } finally {
    runtime.close()
    runtime.close()
  }
})

Runtime('reports the memory limit given, or a detected one, and rejects a bad one', async () => {
  const registry = new Registry()
  const runtime = registerRuntimeMetrics(registry, { memoryLimitBytes: 1024 })
  runtime.close()
  assert.is(parseExposition(await registry.metrics()).get('webhook_memory_limit_bytes'), 1024)
  assert.ok(detectMemoryLimitBytes() > 0)
  try {
    registerRuntimeMetrics(new Registry(), { memoryLimitBytes: -1 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"memoryLimitBytes" must be a positive number/)
  }
})

Runtime.run()
