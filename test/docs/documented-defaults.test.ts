import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync } from 'node:fs'
import { DEFAULT_DLQ_POLICY, dlqSchedule } from '../../src/core/dlq-policy.js'
import { PipelineError } from '../../src/core/errors.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createHealth, type QueueHealth } from '../../src/http/health.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { parseExposition } from '../observability/exposition.js'

// Each test reads the README's sentence and checks the default it states against what the code does with no
// option given: a changed default without a changed README (or the reverse) fails here.
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').replace(/\s+/g, ' ')
const Defaults = suite('documented defaults')

Defaults('the DLQ re-queues after 1m, 10m, 1h and marks an entry failed after 3 rounds', () => {
  assert.match(readme, 'after 1m, 10m, 1h;')
  assert.match(readme, 'fails again after 3 rounds')
  const now = 1_000_000
  const transient = new PipelineError('transient', 'DESTINATION_5XX', 'the destination answered 503')
  const rounds = [0, 1, 2, 3].map((n) => dlqSchedule(DEFAULT_DLQ_POLICY, n, transient, now))
  assert.equal(rounds.map((r) => r.status), ['pending', 'pending', 'pending', 'failed'])
  assert.equal(rounds.slice(0, 3).map((r) => r.nextRetryAt!.getTime() - now), [60_000, 600_000, 3_600_000])
})

Defaults('the DLQ stream is documented as MAXLEN ~100,000 and 168 h, as the code defaults say', () => {
  assert.match(readme, 'trimmed by MAXLEN ~100,000 and 168 h')
  const toDlq = readFileSync(new URL('../../src/operators/to-dlq.ts', import.meta.url), 'utf8')
  assert.match(toDlq, 'const maxLen = options.maxLen ?? 100_000')
  const dlqRetry = readFileSync(new URL('../../src/pipelines/dlq-retry.ts', import.meta.url), 'utf8')
  assert.match(dlqRetry, "positive('retentionMs', options.retentionMs, 168 * 3_600_000)")
})

Defaults('retention is documented as off by default, every minute, 1000 rows a statement, 100 statements, 20% of the time', async () => {
  assert.match(readme, '| `EVENT_RETENTION` (1m–36500d, or `off`) | `retention.events` | off (kept forever) |')
  assert.match(readme, '| `AUDIT_RETENTION` (1m–36500d, or `off`) | `retention.audit` | off (kept forever) |')
  assert.match(readme, '| `RETENTION_BATCH` (1–100000) | `retention.batch` | 1000 |')
  assert.match(readme, 'prunes every minute')
  assert.match(readme, 'at most 100 per table per minute')
  assert.match(readme, 'busy at most 20% of the time')
  const config = loadConfig({ env: {} })
  assert.equal(config.retention, { batch: 1000 })
  const retention = readFileSync(new URL('../../src/db/retention.ts', import.meta.url), 'utf8')
  for (const code of ["positive('batch', options.batch, 1000)", "positive('intervalMs', options.intervalMs, 60_000)",
    "positive('maxBatches', options.maxBatches, 100)", 'const dutyCycle = options.dutyCycle ?? 0.2']) assert.match(retention, code)
})

function health(queue: Partial<QueueHealth>, poisonRecent = 0) {
  return createHealth({
    checkDatabase: async () => ({}), checkRedis: async () => ({}),
    checkQueue: async () => ({ depth: 0, lag: 0, pending: 0, oldestPendingAgeSeconds: 0, groupExists: true, ...queue }),
    worker: () => ({ inFlight: 0, processed: 0, poisonRecent, shuttingDown: false }),
  })
}

Defaults('health is degraded over 1000 waiting entries, an oldest pending entry of 300 s, or recent poison', async () => {
  assert.match(readme, 'degraded when more than 1000 entries wait (the group\'s lag plus its pending entries, as `webhook_queue_depth`; ' +
    'acked entries not yet trimmed do not count), the oldest pending entry is older than 300 s, poison entries were dead-lettered in the last 5 minutes')
  const cases: [Partial<QueueHealth>, number, string][] = [
    [{ lag: 600, pending: 400 }, 0, 'healthy'], [{ lag: 600, pending: 401 }, 0, 'degraded'], [{ depth: 5000 }, 0, 'healthy'],
    [{ oldestPendingAgeSeconds: 300 }, 0, 'healthy'], [{ oldestPendingAgeSeconds: 301 }, 0, 'degraded'],
    [{}, 1, 'degraded'],
  ]
  for (const [queue, poison, expected] of cases) {
    const h = health(queue, poison)
    try {
      assert.is((await h.report()).status, expected, JSON.stringify({ queue, poison }))
    } finally {
      h.close()
    }
  }
})

Defaults('each metric label lets its first 100 distinct values through and counts the rest as other', async () => {
  assert.match(readme, 'lets its first 100 distinct values through and counts the rest as `other`')
  const m = createMetrics({ defaultMetrics: false })
  try {
    for (let i = 0; i < 150; i++) m.received('webhook.github.push', `tool-${i}`)
    const series = [...parseExposition(await m.metricsText()).entries()].filter(([name]) => name.startsWith('webhook_events_received_total{'))
    const tools = series.map(([name]) => /tool_id="([^"]*)"/.exec(name)![1])
    assert.is(tools.length, 101)
    assert.ok(tools.includes('other'))
    assert.is(series.find(([name]) => name.includes('tool_id="other"'))![1], 50)
  } finally {
    m.close()
  }
})

Defaults('event types are budgeted 50 per tool and 1000 pairs in total', async () => {
  assert.match(readme, 'each tool lets its first 50 distinct event types through (`METRICS_MAX_EVENT_TYPES_PER_TOOL`) and all tools together 1000 (tool, event type) pairs')
  const m = createMetrics({ defaultMetrics: false })
  try {
    // 30 tools × 40 types: each tool is within its 50, the 1001st pair and later fold
    for (let t = 0; t < 30; t++) for (let e = 0; e < 40; e++) m.received(`webhook.x.e${e}`, `tool-${t}`)
    for (let e = 40; e < 60; e++) m.received(`webhook.x.e${e}`, 'tool-0')
    const series = [...parseExposition(await m.metricsText()).entries()].filter(([name]) => name.startsWith('webhook_events_received_total{'))
    const known = series.filter(([name]) => !name.includes('event_type="other"'))
    assert.is(known.length, 1000)
    assert.is(series.filter(([name]) => name.includes('event_type="other"')).reduce((sum, [, v]) => sum + v, 0), 1200 + 20 - 1000)
  } finally {
    m.close()
  }
  const perTool = createMetrics({ defaultMetrics: false })
  try {
    for (let e = 0; e < 60; e++) perTool.received(`webhook.x.e${e}`, 'tool-0')
    assert.is(parseExposition(await perTool.metricsText()).get('webhook_events_received_total{event_type="other",tool_id="tool-0"}'), 10)
  } finally {
    perTool.close()
  }
})

Defaults('queue gauges are read at scrape time and cached 1 s', async () => {
  assert.match(readme, 'gauge (read at scrape, cached 1 s)')
  const m = createMetrics({ defaultMetrics: false })
  try {
    let calls = 0
    m.setQueueStats(async () => { calls++; return { depth: calls, lag: 0, oldestPendingAgeSeconds: 0, dlqDepth: 0 } })
    // two scrapes right after each other share one provider call; a scrape after the second calls again
    await m.metricsText()
    await m.metricsText()
    assert.is(calls, 1)
    await new Promise((r) => setTimeout(r, 1100))
    assert.is(parseExposition(await m.metricsText()).get('webhook_queue_depth'), calls)
    assert.ok(calls >= 2, `a scrape after the window calls the provider again (${calls} calls)`)
  } finally {
    m.close()
  }
})

Defaults('every process reloads tools every 2 s: the registry default the service uses', () => {
  assert.match(readme, 'every process reloads tools every 2 s')
  const registry = readFileSync(new URL('../../src/db/tool-registry.ts', import.meta.url), 'utf8')
  assert.match(registry, 'this.refreshMs = options.refreshMs ?? 2000')
  // the service builds its registry without a refreshMs of its own, so the default is the period it runs with
  const service = readFileSync(new URL('../../src/service/tools.ts', import.meta.url), 'utf8')
  assert.match(service, 'new ToolRegistry({')
  assert.not.match(service, 'refreshMs')
})

Defaults.run()
