import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { createMetrics, type Metrics } from '../../src/observability/metrics.js'
import { familyNames, parseExposition, runPromtool } from './exposition.js'

const Metrics = suite<{ open: Metrics[] }>('metrics', { open: [] })
Metrics.after.each((ctx) => { for (const m of ctx.open.splice(0)) m.close() })

function make(ctx: { open: Metrics[] }, options: Parameters<typeof createMetrics>[0] = {}): Metrics {
  const m = createMetrics({ defaultMetrics: false, ...options })
  ctx.open.push(m)
  return m
}

Metrics('a scripted sequence of events leaves exact counter values', async (ctx) => {
  const m = make(ctx)
  for (let i = 0; i < 5; i++) m.received('webhook.github.push', 'gh-main')
  m.received('webhook.gitlab.push', 'gl')
  m.processed('webhook.github.push', 'gh-main', 'stored', 0.004)
  m.processed('webhook.github.push', 'gh-main', 'stored', 0.2)
  m.processed('webhook.github.push', 'gh-main', 'duplicate', 0.001)
  m.processed('webhook.gitlab.push', 'gl', 'dead_lettered', 61)
  m.retry(1, 'DESTINATION_5XX'); m.retry(2, 'DESTINATION_5XX'); m.retry(2, 'DESTINATION_5XX')
  m.deadLettered('webhook.gitlab.push', 'DESTINATION_4XX')
  m.dlqRetry('requeued'); m.dlqRetry('requeued'); m.dlqRetry('failed')
  m.ingest('gh-main', 202); m.ingest('gh-main', 401); m.ingest('unknown', 404)
  m.signatureFailure('gh-main')
  m.healthCheck('redis', 'unhealthy', 2)
  m.setInFlight(7)
  const s = parseExposition(await m.metricsText())
  assert.is(s.get('webhook_events_received_total{event_type="webhook.github.push",tool_id="gh-main"}'), 5)
  assert.is(s.get('webhook_events_received_total{event_type="webhook.gitlab.push",tool_id="gl"}'), 1)
  assert.is(s.get('webhook_events_processed_total{event_type="webhook.github.push",tool_id="gh-main",status="stored"}'), 2)
  assert.is(s.get('webhook_events_processed_total{event_type="webhook.github.push",tool_id="gh-main",status="duplicate"}'), 1)
  const stored = 'event_type="webhook.github.push",tool_id="gh-main",status="stored"'
  assert.is(s.get(`webhook_event_processing_duration_seconds_count{${stored}}`), 2)
  assert.ok(Math.abs((s.get(`webhook_event_processing_duration_seconds_sum{${stored}}`) ?? 0) - 0.204) < 1e-9)
  assert.is(s.get(`webhook_event_processing_duration_seconds_bucket{${stored},le="0.005"}`), 1)
  assert.is(s.get(`webhook_event_processing_duration_seconds_bucket{${stored},le="0.25"}`), 2)
  const dead = 'event_type="webhook.gitlab.push",tool_id="gl",status="dead_lettered"'
  assert.is(s.get(`webhook_event_processing_duration_seconds_bucket{${dead},le="60"}`), 0)
  assert.is(s.get(`webhook_event_processing_duration_seconds_bucket{${dead},le="+Inf"}`), 1)
  assert.is(s.get('webhook_retry_attempts_total{attempt="1",reason="DESTINATION_5XX"}'), 1)
  assert.is(s.get('webhook_retry_attempts_total{attempt="2",reason="DESTINATION_5XX"}'), 2)
  assert.is(s.get('webhook_dlq_entries_total{event_type="webhook.gitlab.push",reason="DESTINATION_4XX"}'), 1)
  assert.is(s.get('webhook_dlq_retries_total{status="requeued"}'), 2)
  assert.is(s.get('webhook_dlq_retries_total{status="failed"}'), 1)
  assert.is(s.get('webhook_ingest_requests_total{tool_id="gh-main",code="202"}'), 1)
  assert.is(s.get('webhook_ingest_requests_total{tool_id="unknown",code="404"}'), 1)
  assert.is(s.get('webhook_signature_failures_total{tool_id="gh-main"}'), 1)
  assert.is(s.get('webhook_health_checks_total{component="redis",status="unhealthy"}'), 1)
  assert.is(s.get('webhook_health_check_duration_seconds_count{component="redis"}'), 1)
  assert.is(s.get('webhook_in_flight'), 7)
})

Metrics('label values past maxLabelValues fold into "other" while known values keep counting', async (ctx) => {
  const m = make(ctx, { maxLabelValues: 3 })
  for (let i = 0; i < 50; i++) m.received('webhook.x.push', `tool-${i}`)
  m.received('webhook.x.push', 'tool-1')
  m.received('webhook.x.push', '')
  const s = parseExposition(await m.metricsText())
  const series = [...s.keys()].filter((k) => k.startsWith('webhook_events_received_total{'))
  assert.is(series.length, 5)
  assert.is(s.get('webhook_events_received_total{event_type="webhook.x.push",tool_id="tool-1"}'), 2)
  assert.is(s.get('webhook_events_received_total{event_type="webhook.x.push",tool_id="other"}'), 47)
  assert.is(s.get('webhook_events_received_total{event_type="webhook.x.push",tool_id="unknown"}'), 1)
})

Metrics('forward attempts count by destination and outcome with durations; destinations past the budget fold into "other"; breaker states are 0, 1, 2', async (ctx) => {
  const m = make(ctx, { maxLabelValues: 2 })
  m.forwardAttempt('gh-main', 'success', 0.02)
  m.forwardAttempt('gh-main', 'transient', 0.5)
  m.forwardAttempt('billing', 'permanent', 0.01)
  for (let i = 0; i < 20; i++) m.forwardAttempt(`made-up-${i}`, 'success', 0.001)
  m.destinationState('gh-main', 'open')
  m.destinationState('billing', 'half_open')
  m.destinationState('billing', 'closed')
  m.deliveryLogDropped(3)
  const s = parseExposition(await m.metricsText())
  assert.equal([...s.keys()].filter((k) => k.startsWith('webhook_forward_attempts_total{')).sort(), [
    'webhook_forward_attempts_total{destination="billing",outcome="permanent"}',
    'webhook_forward_attempts_total{destination="gh-main",outcome="success"}',
    'webhook_forward_attempts_total{destination="gh-main",outcome="transient"}',
    'webhook_forward_attempts_total{destination="other",outcome="success"}',
  ])
  assert.is(s.get('webhook_forward_attempts_total{destination="other",outcome="success"}'), 20)
  assert.is(s.get('webhook_forward_duration_seconds_count{destination="gh-main"}'), 2)
  assert.is(s.get('webhook_forward_duration_seconds_sum{destination="gh-main"}'), 0.52)
  assert.is(s.get('webhook_forward_duration_seconds_bucket{destination="gh-main",le="0.025"}'), 1)
  assert.is(s.get('webhook_destination_state{destination="gh-main"}'), 2)
  assert.is(s.get('webhook_destination_state{destination="billing"}'), 0)
  assert.is(s.get('webhook_delivery_log_dropped_total'), 3)
  assert.is(s.get('webhook_metric_labels_folded_total{label="destination"}'), 20)
})

Metrics('a destination named by the longest tool id and destination id keeps a series of its own, in every destination metric', async (ctx) => {
  const m = make(ctx)
  const name = `${'t'.repeat(128)}/${'d'.repeat(64)}`
  m.forwardAttempt(name, 'success', 0.01)
  m.destinationState(name, 'open')
  m.destinationAutoDisabled(name)
  const s = parseExposition(await m.metricsText())
  assert.is(s.get(`webhook_forward_attempts_total{destination="${name}",outcome="success"}`), 1)
  assert.is(s.get(`webhook_destination_state{destination="${name}"}`), 2)
  assert.is(s.get(`webhook_destinations_auto_disabled_total{destination="${name}"}`), 1)
  assert.is(s.get('webhook_metric_labels_folded_total{label="destination"}') ?? 0, 0)
})

Metrics('event types are budgeted per tool: outcomes and dead letters use the labels the event was received under, folds are counted once per event', async (ctx) => {
  const m = make(ctx, { maxEventTypesPerTool: 2, maxEventTypes: 100 })
  for (const type of ['a', 'b', 'c', 'd']) {
    m.received(`webhook.x.${type}`, 'noisy')
    m.processed(`webhook.x.${type}`, 'noisy', 'stored', 0.01)
  }
  m.received('webhook.x.c', 'quiet')
  m.deadLettered('webhook.x.d', 'TRANSFORM_FAILED', 'noisy')
  m.deadLettered('webhook.x.c', 'TRANSFORM_FAILED', 'quiet')
  const s = parseExposition(await m.metricsText())
  assert.is(s.get('webhook_events_received_total{event_type="webhook.x.b",tool_id="noisy"}'), 1)
  assert.is(s.get('webhook_events_received_total{event_type="other",tool_id="noisy"}'), 2)
  assert.is(s.get('webhook_events_received_total{event_type="webhook.x.c",tool_id="quiet"}'), 1)
  assert.is(s.get('webhook_events_processed_total{event_type="other",tool_id="noisy",status="stored"}'), 2)
  assert.is(s.get('webhook_event_processing_duration_seconds_count{event_type="other",tool_id="noisy",status="stored"}'), 2)
  assert.is(s.get('webhook_dlq_entries_total{event_type="other",reason="TRANSFORM_FAILED"}'), 1)
  assert.is(s.get('webhook_dlq_entries_total{event_type="webhook.x.c",reason="TRANSFORM_FAILED"}'), 1)
  assert.is(s.get('webhook_metric_labels_folded_total{label="event_type",tool_id="noisy"}'), 2)
  assert.is(s.get('webhook_metric_labels_folded_total{label="event_type",tool_id="quiet"}'), undefined)
})

Metrics('folds of tool_id, code and reason are counted by label; the value "other" itself is no fold', async (ctx) => {
  const m = make(ctx, { maxLabelValues: 2 })
  for (const tool of ['t1', 't2', 't3', 't4', 'other']) m.received('webhook.x.push', tool)
  for (const code of [202, 401, 404, 413]) m.ingest('t1', code, 0.001)
  for (const reason of ['A', 'B', 'C']) m.retry(1, reason)
  m.deadLettered('webhook.x.push', 'D', 't1')
  const s = parseExposition(await m.metricsText())
  assert.is(s.get('webhook_metric_labels_folded_total{label="tool_id"}'), 2)
  assert.is(s.get('webhook_metric_labels_folded_total{label="code"}'), 2)
  assert.is(s.get('webhook_metric_labels_folded_total{label="reason"}'), 2)
  assert.is(s.get('webhook_ingest_request_duration_seconds_count{tool_id="t1",code="other"}'), 2)
  assert.is(s.get('webhook_events_received_total{event_type="webhook.x.push",tool_id="other"}'), 3)
})

Metrics('retry attempts are numbers up to 9, then "10+"; an unlisted status reports "other"', async (ctx) => {
  const m = make(ctx)
  for (let a = 1; a <= 14; a++) m.retry(a, 'TIMEOUT')
  m.retry(Number.NaN, 'TIMEOUT')
  m.processed('t', 'x', 'exploded' as never, 1)
  m.dlqRetry('bogus' as never)
  const s = parseExposition(await m.metricsText())
  const attempts = [...s.keys()].filter((k) => k.startsWith('webhook_retry_attempts_total{'))
  assert.is(attempts.length, 11)
  assert.is(s.get('webhook_retry_attempts_total{attempt="10+",reason="TIMEOUT"}'), 5)
  assert.is(s.get('webhook_retry_attempts_total{attempt="9",reason="TIMEOUT"}'), 1)
  assert.is(s.get('webhook_retry_attempts_total{attempt="unknown",reason="TIMEOUT"}'), 1)
  assert.is(s.get('webhook_events_processed_total{event_type="t",tool_id="x",status="other"}'), 1)
  assert.is(s.get('webhook_dlq_retries_total{status="other"}'), 1)
})

Metrics('queue gauges are read at scrape time, cached, and a hung provider times out keeping the last values', async (ctx) => {
  // a 1 s cache window: the scrapes meant to fall inside it do so with a second of slack on a busy machine
  const m = make(ctx, { queueStatsTimeoutMs: 100, queueStatsCacheMs: 1000 })
  let calls = 0
  let hang = false
  m.setQueueStats(async () => {
    calls++
    if (hang) await new Promise(() => {})
    return { depth: 10 * calls, lag: 2, oldestPendingAgeSeconds: 3.5, dlqDepth: 4 }
  })
  const first = parseExposition(await m.metricsText())
  assert.is(calls, 1, 'one provider call serves all four gauges')
  assert.is(first.get('webhook_queue_depth'), 10)
  assert.is(first.get('webhook_consumer_lag'), 2)
  assert.is(first.get('webhook_oldest_pending_age_seconds'), 3.5)
  assert.is(first.get('webhook_dlq_depth'), 4)
  await Promise.all([m.metricsText(), m.metricsText()])
  assert.is(calls, 1, 'scrapes within the cache window reuse the value')
  await sleep(1100)
  hang = true
  const started = Date.now()
  const after = parseExposition(await m.metricsText())
  assert.ok(Date.now() - started < 1000, 'a hung provider does not hang the scrape')
  assert.is(calls, 2)
  assert.is(after.get('webhook_queue_depth'), 10)
  // the error counter is collected alongside the gauges, so the failure shows from the next scrape on
  assert.is(parseExposition(await m.metricsText()).get('webhook_queue_stats_errors_total'), 1)
})

Metrics('webhook_in_flight sums the tracked counts at scrape time; untracked readers and setInFlight take over', async (ctx) => {
  const m = make(ctx)
  let inFlight = 3
  m.trackInFlight(() => inFlight)
  const untrack = m.trackInFlight(() => 4)
  assert.is(parseExposition(await m.metricsText()).get('webhook_in_flight'), 7)
  inFlight = 11
  untrack()
  assert.is(parseExposition(await m.metricsText()).get('webhook_in_flight'), 11)
  m.setInFlight(2)
  inFlight = 50
  assert.is(parseExposition(await m.metricsText()).get('webhook_in_flight'), 2)
})

Metrics('webhook_stream_trimmed_entries_total adds up what each trim removed', async (ctx) => {
  const m = make(ctx)
  for (const n of [120, 0, 35]) m.streamTrimmed(n)
  assert.is(parseExposition(await m.metricsText()).get('webhook_stream_trimmed_entries_total'), 155)
})

Metrics('database pool gauges follow the provider', async (ctx) => {
  const m = make(ctx)
  const pool = { total: 10, idle: 0, waiting: 4, max: 10 }
  m.setDbPoolStats(() => pool)
  const s = parseExposition(await m.metricsText())
  assert.is(s.get('webhook_db_pool_connections{state="active"}'), 10)
  assert.is(s.get('webhook_db_pool_connections{state="idle"}'), 0)
  assert.is(s.get('webhook_db_pool_waiting'), 4)
  assert.is(s.get('webhook_db_pool_max_connections'), 10)
})

Metrics('the full exposition, with the standard process_* and nodejs_* metrics and build info, passes `promtool check metrics`', async (ctx) => {
  const m = make(ctx, { defaultMetrics: true, memoryLimitBytes: 512 * 1024 ** 2 })
  m.received('webhook.github.push', 'gh-main')
  m.processed('webhook.github.push', 'gh-main', 'stored', 0.01)
  m.retry(1, 'TIMEOUT')
  m.ingest('gh-main', 202, 0.003)
  m.setQueueStats(async () => ({ depth: 1, lag: 1, oldestPendingAgeSeconds: 1, dlqDepth: 1 }))
  const text = await m.metricsText()
  const names = familyNames(text)
  // the names the common Node.js dashboards chart
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'process_start_time_seconds',
    'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_gc_duration_seconds', 'nodejs_heap_size_used_bytes',
    'nodejs_heap_space_size_used_bytes', 'nodejs_active_handles', 'nodejs_version_info', 'nodejs_external_memory_bytes']) {
    assert.ok(names.has(name), name)
  }
  assert.ok(names.has('webhook_event_loop_lag_seconds'))
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  assert.is(parseExposition(text).get(`hookstream_build_info{version="${pkg.version}",node="${process.versions.node}"}`), 1)
  assert.is(parseExposition(text).get('webhook_ingest_request_duration_seconds_bucket{tool_id="gh-main",code="202",le="0.005"}'), 1)
  assert.is(parseExposition(text).get('webhook_memory_limit_bytes'), 512 * 1024 ** 2)
  const res = runPromtool(['check', 'metrics'], text)
  assert.is(res.status, 0, res.output)
})

Metrics('a registry that already collects process metrics is accepted, a second Metrics on it is refused; separate registries count separately', async (ctx) => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const a = make(ctx, { registry, defaultMetrics: true })
  try {
    make(ctx, { registry })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /one Metrics per registry/)
  }
  const b = make(ctx)
  a.received('e', 't'); a.received('e', 't'); b.received('e', 't')
  assert.is(parseExposition(await a.metricsText()).get('webhook_events_received_total{event_type="e",tool_id="t"}'), 2)
  assert.is(parseExposition(await b.metricsText()).get('webhook_events_received_total{event_type="e",tool_id="t"}'), 1)
  try {
    createMetrics({ maxLabelValues: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"maxLabelValues" must be an integer/)
  }
  a.close(); a.close()
})

Metrics.run()
