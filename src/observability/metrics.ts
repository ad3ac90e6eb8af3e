import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import { registerBuildInfo } from './build-info.js'
import { EventTypeBudget } from './event-type-budget.js'
import { LabelGuard, OTHER_LABEL_VALUE } from './label-guard.js'
import { registerRuntimeMetrics } from './runtime-metrics.js'
import { PreaggregatedHistogram, preaggregatedCounter } from './series.js'
import { positiveInteger } from '../core/positive-integer.js'

/** Outcomes of one event, the `status` label of `webhook_events_processed_total`. Anything else reports "other". */
export const PROCESSED_STATUSES = ['stored', 'forwarded', 'transformed', 'duplicate', 'dead_lettered', 'retry_scheduled', 'held', 'processed'] as const
/** One of PROCESSED_STATUSES. */
export type ProcessedStatus = (typeof PROCESSED_STATUSES)[number]

/** Status changes of DLQ rows, the `status` label of `webhook_dlq_retries_total`: re-queued, resolved, marked failed, discarded. */
export const DLQ_RETRY_STATUSES = ['requeued', 'resolved', 'failed', 'discarded'] as const
/** One of DLQ_RETRY_STATUSES. */
export type DlqRetryStatus = (typeof DLQ_RETRY_STATUSES)[number]

/** Outcomes of one forward attempt, the `outcome` label of `webhook_forward_attempts_total`. */
export const FORWARD_OUTCOMES = ['success', 'transient', 'permanent'] as const
/** One of FORWARD_OUTCOMES. */
export type ForwardOutcome = (typeof FORWARD_OUTCOMES)[number]

/** A destination's circuit-breaker state, the value of `webhook_destination_state`: closed 0, half_open 1, open 2. */
export const DESTINATION_STATE_VALUES = Object.freeze({ closed: 0, half_open: 1, open: 2 })

/** Health components, the `component` label of `webhook_health_checks_total`. */
export const HEALTH_COMPONENTS = ['database', 'redis', 'queue', 'worker', 'tools'] as const
/** One of HEALTH_COMPONENTS. */
export type HealthComponent = (typeof HEALTH_COMPONENTS)[number]
/** Health statuses, the `status` label of `webhook_health_checks_total` and the `status` of GET /health. */
export const HEALTH_STATUSES = ['healthy', 'degraded', 'unhealthy'] as const
/** One of HEALTH_STATUSES. */
export type HealthStatus = (typeof HEALTH_STATUSES)[number]

/** Attempts from this number on share one `attempt` label value, `"10+"`. */
export const RETRY_ATTEMPT_CAP = 10

/** What a queue-stats provider returns; read at scrape time. */
export interface QueueStats {
  /** Entries in the stream not yet delivered to the group plus pending ones (or XLEN, as the provider sees fit). */
  readonly depth: number
  /** The group's lag (XINFO GROUPS `lag`). */
  readonly lag: number
  /** Age of the oldest pending entry in seconds (0 when none). */
  readonly oldestPendingAgeSeconds: number
  /** Entries in the DLQ still pending or retrying. */
  readonly dlqDepth: number
}

/** What a database-pool provider returns (pg `Pool`: totalCount, idleCount, waitingCount, options.max). */
export interface DbPoolStats {
  readonly total: number
  readonly idle: number
  readonly waiting: number
  readonly max: number
}

/** Options of `createMetrics`. */
export interface MetricsOptions {
  /** Registry to register on. @defaultValue a new Registry (never the global one) */
  readonly registry?: Registry
  /** Distinct values let through per label (tool_id, reason, code) before folding into "other". @defaultValue 100 */
  readonly maxLabelValues?: number
  /**
   * Distinct `event_type` values each tool may add before its new ones fold into "other"
   * (METRICS_MAX_EVENT_TYPES_PER_TOOL): one tool's made-up types never fold another tool's. @defaultValue 50
   */
  readonly maxEventTypesPerTool?: number
  /** Distinct (tool, event_type) pairs all tools together may add (METRICS_MAX_EVENT_TYPES). @defaultValue 1000 */
  readonly maxEventTypes?: number
  /**
   * Also collect prom-client's Node process metrics (`process_*`, `nodejs_*`) unless the registry already does.
   * `hookstream_build_info{version,node}` is always registered. @defaultValue true
   */
  readonly defaultMetrics?: boolean
  /** Memory limit reported as `webhook_memory_limit_bytes`. @defaultValue the cgroup limit, else total memory */
  readonly memoryLimitBytes?: number
  /** A queue-stats provider that takes longer than this at scrape time is abandoned. @defaultValue 1000 */
  readonly queueStatsTimeoutMs?: number
  /** Queue stats are reused for this long, so parallel scrapes cost one provider call. @defaultValue 1000 */
  readonly queueStatsCacheMs?: number
}

/** The `webhook_*` metric family on one registry. Every method is cheap enough for the per-event hot path. */
export interface Metrics {
  readonly registry: Registry
  /** Content-Type header for `metricsText()`. */
  readonly contentType: string
  /** An event arrived at the pipeline (or was accepted by ingest). */
  received(eventType: string, toolId: string): void
  /** An event reached an outcome after `seconds` of processing. */
  processed(eventType: string, toolId: string, status: ProcessedStatus, seconds: number): void
  /** A step is retried; `attempt` is 1 for the first retry, `reason` an error code such as "DESTINATION_5XX". */
  retry(attempt: number, reason: string): void
  /** A destination's Retry-After was longer than FORWARD_MAX_RETRY_AFTER and was cut to it. */
  retryAfterCapped(): void
  /**
   * An event was written to the DLQ; `reason` is the failure's error code. `toolId` picks the event-type budget
   * (the metric has no tool_id label). @defaultValue toolId "unknown"
   */
  deadLettered(eventType: string, reason: string, toolId?: string): void
  /** `count` DLQ rows took this status change (re-queued, resolved, failed, discarded). @defaultValue count 1 */
  dlqRetry(status: DlqRetryStatus, count?: number): void
  /**
   * Ingest answered `code` for a request to tool `toolId` (pass "unknown" for an unconfigured tool), `seconds` after
   * the request arrived (observed in `webhook_ingest_request_duration_seconds` when given).
   */
  ingest(toolId: string, code: number, seconds?: number): void
  /** A request failed signature verification. */
  signatureFailure(toolId: string): void
  /**
   * Ingest answered a re-sent delivery id as a duplicate; `body` says whether its body matched the first one's
   * (`different`: a replay or a misbehaving sender). Counted in `webhook_ingest_duplicates_total{tool_id,body}`.
   */
  ingestDuplicate(toolId: string, body: 'same' | 'different'): void
  /** Ingest answered 503 INGEST_BUSY: the request's body did not fit the in-flight budget (`webhook_ingest_busy_total`). */
  ingestBusy(): void
  /** Reads the body bytes ingest holds (`webhook_ingest_inflight_bytes`) at scrape time. Replaces an earlier reader. */
  setInflightBytes(read: () => number): void
  /**
   * The ingest port closed a connection to keep its caps: `client_cap`, `max_connections` or `idle_reaped`
   * (`webhook_http_connections_closed_total{reason}`).
   */
  connectionClosed(reason: string): void
  /** A health check of `component` ended with `status` after `seconds`. */
  healthCheck(component: HealthComponent, status: HealthStatus, seconds: number): void
  /** The worker's stream trim removed `entries` acked entries (STREAM_TRIM_INTERVAL). */
  streamTrimmed(entries: number): void
  /** Retention deleted `rows` old rows from `table` (EVENT_RETENTION, AUDIT_RETENTION, DELIVERY_LOG_RETENTION). */
  retentionPruned(table: 'webhook_events' | 'webhook_audit_log' | 'webhook_deliveries', rows: number): void
  /**
   * One HTTP attempt to `destination` ended with `outcome` after `seconds` (`webhook_forward_attempts_total`,
   * `webhook_forward_duration_seconds`). Name a destination as its breaker is (`<tool id>/<destination id>`, the
   * tool's id for its `forward_url`); destinations past the label budget (shared with `webhook_destination_state`)
   * fold into "other".
   */
  forwardAttempt(destination: string, outcome: ForwardOutcome, seconds: number): void
  /** A destination's circuit breaker changed state (`webhook_destination_state`: closed 0, half_open 1, open 2). */
  destinationState(destination: string, state: keyof typeof DESTINATION_STATE_VALUES): void
  /** The delivery log dropped `count` attempts it could not write (`webhook_delivery_log_dropped_total`). */
  deliveryLogDropped(count: number): void
  /** A destination (`<tool id>/<destination id>`) was disabled after failing for its `auto_disable_after` (`webhook_destinations_auto_disabled_total`). */
  destinationAutoDisabled(destination: string): void
  /** Events being processed right now. */
  setInFlight(count: number): void
  /**
   * Adds `read` to what `webhook_in_flight` sums at scrape time (no per-event cost; one reader per running source,
   * so several pipelines in one process add up). Returns a function that removes the reader again.
   */
  trackInFlight(read: () => number): () => void
  /** Reads queue gauges from `provider` at scrape time (timeout, cached ~1 s). Replaces an earlier provider. */
  setQueueStats(provider: () => Promise<QueueStats>): void
  /** Reads database-pool gauges from `provider` at scrape time. Replaces an earlier provider. */
  setDbPoolStats(provider: () => DbPoolStats): void
  /**
   * Reads, at scrape time, the ids of stored tools that cannot be loaded (`webhook_tool_load_errors{tool_id}` = 1
   * each; at most 100 ids). Replaces an earlier provider.
   */
  setToolLoadErrors(provider: () => Iterable<string>): void
  /** The exposition in Prometheus text format. */
  metricsText(): Promise<string>
  /** Stops the GC observer and event-loop monitor. Idempotent. */
  close(): void
}

/** Ingest answers take a Redis round trip: finer buckets at the low end. */
const INGEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const processedSet = new Set<string>(PROCESSED_STATUSES)
const dlqRetrySet = new Set<string>(DLQ_RETRY_STATUSES)
const componentSet = new Set<string>(HEALTH_COMPONENTS)
const statusSet = new Set<string>(HEALTH_STATUSES)

const positiveInt = positiveInteger.bind(undefined, 'createMetrics')

/**
 * Creates the `webhook_*` metric family on its own prom-client registry (or `options.registry`).
 *
 * @example
 * const metrics = createMetrics()
 * metrics.received('webhook.github.push', 'gh-main')
 * metrics.processed('webhook.github.push', 'gh-main', 'stored', 0.012)
 * res.setHeader('content-type', metrics.contentType); res.end(await metrics.metricsText())
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = options.registry ?? new Registry()
  const maxLabelValues = positiveInt('maxLabelValues', options.maxLabelValues ?? 100)
  const statsTimeoutMs = positiveInt('queueStatsTimeoutMs', options.queueStatsTimeoutMs ?? 1000)
  const statsCacheMs = positiveInt('queueStatsCacheMs', options.queueStatsCacheMs ?? 1000)
  if (registry.getSingleMetric('webhook_events_received_total')) {
    throw new Error('createMetrics: the registry already holds the webhook_* metrics; create one Metrics per registry and share it')
  }
  const registers = [registry]
  const eventTypes = new EventTypeBudget({ perTool: options.maxEventTypesPerTool ?? 50, total: options.maxEventTypes ?? 1000 })
  const toolId = new LabelGuard(maxLabelValues)
  const reason = new LabelGuard(maxLabelValues)
  const code = new LabelGuard(maxLabelValues)
  // `<tool id>/<destination id>`: up to 128 + 1 + 64 characters, so every valid pair has a series of its own
  const destination = new LabelGuard(maxLabelValues, 193)

  // counters and histograms are pre-aggregated in plain numbers: the per-event cost is a few Map lookups
  const counter = (name: string, help: string, labelNames: string[], guards: (LabelGuard | undefined)[]) =>
    preaggregatedCounter(registry, name, help, labelNames, guards)

  // event_type and tool_id come bounded (boundEvent): an event type's budget is its tool's
  const received = counter('webhook_events_received_total', 'Events received by the pipeline.', ['event_type', 'tool_id'], [undefined, undefined])
  const processed = counter('webhook_events_processed_total', 'Events that reached an outcome.',
    ['event_type', 'tool_id', 'status'], [undefined, undefined, undefined])
  const duration = new PreaggregatedHistogram(registry, {
    name: 'webhook_event_processing_duration_seconds',
    help: 'Time from reading an event to its outcome.',
    labelNames: ['event_type', 'tool_id', 'status'],
    guards: [undefined, undefined, undefined],
    buckets: DURATION_BUCKETS,
  })
  const retries = counter('webhook_retry_attempts_total', 'Retries of a failed step; attempt is 1..9 or "10+".', ['attempt', 'reason'], [undefined, undefined])
  const dlq = counter('webhook_dlq_entries_total', 'Events written to the dead-letter queue.', ['event_type', 'reason'], [undefined, undefined])
  const dlqRetries = counter('webhook_dlq_retries_total', 'DLQ rows by status change: requeued, resolved, failed (rounds used up or not retryable), discarded.', ['status'], [undefined])
  const ingests = counter('webhook_ingest_requests_total', 'Ingest requests by tool and HTTP status code.', ['tool_id', 'code'], [undefined, undefined])
  const ingestDuration = new PreaggregatedHistogram(registry, {
    name: 'webhook_ingest_request_duration_seconds',
    help: 'Time from an ingest request\'s arrival to its answer, by tool and HTTP status code.',
    labelNames: ['tool_id', 'code'],
    guards: [undefined, undefined],
    buckets: INGEST_BUCKETS,
  })
  const duplicates = counter('webhook_ingest_duplicates_total', 'Re-sent delivery ids answered as duplicates, by whether the body matched the first.',
    ['tool_id', 'body'], [toolId, undefined])
  const sigFailures = counter('webhook_signature_failures_total', 'Ingest requests whose signature did not verify.', ['tool_id'], [toolId])
  const healthChecks = counter('webhook_health_checks_total', 'Health checks by component and result.', ['component', 'status'], [undefined, undefined])
  const healthDuration = new PreaggregatedHistogram(registry, {
    name: 'webhook_health_check_duration_seconds',
    help: 'Health check durations.',
    labelNames: ['component'],
    guards: [undefined],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
  })
  const inFlightReaders = new Set<() => number>()
  const inFlightG = new Gauge({ name: 'webhook_in_flight', help: 'Events being processed right now.', registers,
    collect() {
      if (inFlightReaders.size === 0) return
      let sum = 0
      for (const read of inFlightReaders) sum += read()
      this.set(sum)
    } })
  const trimmedC = new Counter({ name: 'webhook_stream_trimmed_entries_total', registers,
    help: 'Acked entries the worker\'s safe trim removed from the main stream.' })
  const prunedC = new Counter({ name: 'webhook_retention_pruned_rows_total', registers, labelNames: ['table'],
    help: 'Rows retention deleted by age (EVENT_RETENTION, AUDIT_RETENTION, DELIVERY_LOG_RETENTION), by table.' })
  const retryAfterCappedC = new Counter({ name: 'webhook_retry_after_capped_total', registers,
    help: 'Destination Retry-After values longer than FORWARD_MAX_RETRY_AFTER, cut to it.' })
  const foldedC = new Counter({ name: 'webhook_metric_labels_folded_total', registers, labelNames: ['label', 'tool_id'],
    help: 'Label values folded into "other" because their budget was spent: per pipeline event (event_type by tool_id, tool_id), ingest request (tool_id, code), retry or dead letter (reason).' })
  // the raw value "other" is not a fold; tool_id is given only for event_type, whose budget is per tool
  const bounded = (guard: LabelGuard, label: string, value: string): string => {
    const b = guard.bound(value)
    if (b === OTHER_LABEL_VALUE && value !== OTHER_LABEL_VALUE) foldedC.inc({ label })
    return b
  }
  const boundEvent = (e: string, t: string, countFolds: boolean): [string, string] => {
    const tool = countFolds ? bounded(toolId, 'tool_id', t) : toolId.bound(t)
    const type = eventTypes.bound(tool, e)
    if (countFolds && type === OTHER_LABEL_VALUE && e !== OTHER_LABEL_VALUE) foldedC.inc({ label: 'event_type', tool_id: tool })
    return [type, tool]
  }
  const forwardAttempts = counter('webhook_forward_attempts_total', 'HTTP delivery attempts by destination and outcome (success, transient, permanent).',
    ['destination', 'outcome'], [undefined, undefined])
  const forwardDuration = new PreaggregatedHistogram(registry, {
    name: 'webhook_forward_duration_seconds',
    help: 'Duration of one HTTP delivery attempt, from sending to the end of the response, by destination.',
    labelNames: ['destination'],
    guards: [undefined],
    buckets: DURATION_BUCKETS,
  })
  const destinationStateG = new Gauge({ name: 'webhook_destination_state', labelNames: ['destination'], registers,
    help: 'Circuit-breaker state per destination: 0 closed, 1 half-open, 2 open.' })
  const autoDisabledC = new Counter({ name: 'webhook_destinations_auto_disabled_total', labelNames: ['destination'], registers,
    help: 'Destinations disabled because every delivery to them failed for their auto_disable_after.' })
  const deliveryLogDroppedC = new Counter({ name: 'webhook_delivery_log_dropped_total', registers,
    help: 'Delivery attempts dropped from the delivery log because PostgreSQL did not take them in time (its queue was full).' })
  const ingestBusyC = new Counter({ name: 'webhook_ingest_busy_total', registers,
    help: 'Ingest requests answered 503 INGEST_BUSY because their body did not fit INGEST_MAX_INFLIGHT_BYTES or its share per client or tool.' })
  const connectionsClosed = counter('webhook_http_connections_closed_total',
    'Ingest connections closed to keep the connection caps, by reason (client_cap, max_connections, idle_reaped).', ['reason'], [reason])
  let inflightBytes: (() => number) | undefined
  new Gauge({ name: 'webhook_ingest_inflight_bytes', help: 'Request body bytes ingest holds in memory (budget INGEST_MAX_INFLIGHT_BYTES).', registers,
    collect() { if (inflightBytes) this.set(inflightBytes()) } })
  const statsErrorsC = new Counter({ name: 'webhook_queue_stats_errors_total', registers,
    help: 'Scrapes whose queue-stats provider failed or timed out (queue gauges then keep their last values).' })

  let queueProvider: (() => Promise<QueueStats>) | undefined
  let cached: { at: number; stats: Promise<QueueStats | undefined> } | undefined
  let lastStats: QueueStats | undefined
  const queueStats = (): Promise<QueueStats | undefined> => {
    const provider = queueProvider
    if (!provider) return Promise.resolve(undefined)
    const now = Date.now()
    if (cached && now - cached.at < statsCacheMs) return cached.stats
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), statsTimeoutMs)
    })
    const stats = Promise.race([Promise.resolve().then(provider), timeout])
      .then((s) => { lastStats = s; return s })
      .catch(() => { statsErrorsC.inc(); return lastStats })
      .finally(() => clearTimeout(timer))
    cached = { at: now, stats }
    return stats
  }
  const queueGauge = (name: string, help: string, pick: (s: QueueStats) => number) => new Gauge({
    name, help, registers,
    async collect() {
      const s = await queueStats()
      if (s) this.set(pick(s))
    },
  })
  queueGauge('webhook_queue_depth', 'Entries waiting in the event stream.', (s) => s.depth)
  queueGauge('webhook_consumer_lag', "The consumer group's lag.", (s) => s.lag)
  queueGauge('webhook_oldest_pending_age_seconds', 'Age of the oldest pending (delivered, unacked) entry.', (s) => s.oldestPendingAgeSeconds)
  queueGauge('webhook_dlq_depth', 'DLQ entries pending or retrying.', (s) => s.dlqDepth)

  let poolProvider: (() => DbPoolStats) | undefined
  new Gauge({
    name: 'webhook_db_pool_connections',
    help: 'Database pool connections by state (total, idle, active).',
    labelNames: ['state'],
    registers,
    collect() {
      if (!poolProvider) return
      const p = poolProvider()
      this.labels('total').set(p.total)
      this.labels('idle').set(p.idle)
      this.labels('active').set(p.total - p.idle)
    },
  })
  new Gauge({ name: 'webhook_db_pool_waiting', help: 'Queries waiting for a free pool connection.', registers,
    collect() { if (poolProvider) this.set(poolProvider().waiting) } })
  new Gauge({ name: 'webhook_db_pool_max_connections', help: 'The pool size limit.', registers,
    collect() { if (poolProvider) this.set(poolProvider().max) } })

  let toolLoadErrors: (() => Iterable<string>) | undefined
  new Gauge({
    name: 'webhook_tool_load_errors',
    help: 'Stored tools whose row cannot be loaded (invalid, or a secret the key cannot decrypt): 1 per tool.',
    labelNames: ['tool_id'],
    registers,
    collect() {
      this.reset()
      // ids of rows that exist in webhook_tools: bounded by the table, capped again here
      for (const id of [...(toolLoadErrors?.() ?? [])].slice(0, 100)) this.labels(id).set(1)
    },
  })

  const runtime = registerRuntimeMetrics(registry,
    options.memoryLimitBytes === undefined ? {} : { memoryLimitBytes: options.memoryLimitBytes })
  registerBuildInfo(registry)
  // a shared registry may already collect them (prom-client throws on a second registration)
  if ((options.defaultMetrics ?? true) && !registry.getSingleMetric('process_cpu_user_seconds_total')) {
    collectDefaultMetrics({ register: registry })
    // standard Node.js dashboards read the process_* and nodejs_* names, so all of them stay (webhook_gc_* and
    // webhook_event_loop_lag_seconds are hookstream's own, with the alerts' buckets). Only the
    // nodejs_active_*_total gauges go: promtool refuses a gauge named *_total, and each is sum(nodejs_active_*).
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(name)
    }
  }

  return {
    registry,
    contentType: registry.contentType,
    // an event is counted as folded once, when it is received; its later outcome reuses the same labels
    received(e, t) {
      const [type, tool] = boundEvent(e, t, true)
      received.get(type, tool).value++
    },
    processed(e, t, status, seconds) {
      const st = processedSet.has(status) ? status : OTHER_LABEL_VALUE
      const [type, tool] = boundEvent(e, t, false)
      processed.get(type, tool, st).value++
      duration.observe(duration.series.get(type, tool, st), seconds)
    },
    retry(attempt, r) {
      const a = !Number.isFinite(attempt) || attempt < 1 ? 'unknown'
        : attempt >= RETRY_ATTEMPT_CAP ? `${RETRY_ATTEMPT_CAP}+` : String(Math.floor(attempt))
      retries.get(a, bounded(reason, 'reason', r)).value++
    },
    deadLettered: (e, r, t = '') => { dlq.get(boundEvent(e, t, false)[0], bounded(reason, 'reason', r)).value++ },
    dlqRetry: (s, count = 1) => { dlqRetries.get(dlqRetrySet.has(s) ? s : OTHER_LABEL_VALUE).value += count },
    ingest(t, c, seconds) {
      const tool = bounded(toolId, 'tool_id', t)
      const status = bounded(code, 'code', String(c))
      ingests.get(tool, status).value++
      if (seconds !== undefined) ingestDuration.observe(ingestDuration.series.get(tool, status), seconds)
    },
    signatureFailure: (t) => { sigFailures.get(t).value++ },
    ingestDuplicate: (t, body) => { duplicates.get(t, body === 'same' ? 'same' : 'different').value++ },
    ingestBusy: () => { ingestBusyC.inc() },
    setInflightBytes(read) { inflightBytes = read },
    connectionClosed: (r) => { connectionsClosed.get(r).value++ },
    healthCheck(component, status, seconds) {
      const c = componentSet.has(component) ? component : OTHER_LABEL_VALUE
      healthChecks.get(c, statusSet.has(status) ? status : OTHER_LABEL_VALUE).value++
      healthDuration.observe(healthDuration.series.get(c), seconds)
    },
    streamTrimmed: (n) => { if (n > 0) trimmedC.inc(n) },
    retentionPruned: (table, n) => { if (n > 0) prunedC.inc({ table }, n) },
    retryAfterCapped: () => { retryAfterCappedC.inc() },
    forwardAttempt(d, outcome, seconds) {
      const dest = bounded(destination, 'destination', d)
      forwardAttempts.get(dest, FORWARD_OUTCOMES.includes(outcome) ? outcome : OTHER_LABEL_VALUE).value++
      forwardDuration.observe(forwardDuration.series.get(dest), seconds)
    },
    destinationState: (d, state) => { destinationStateG.set({ destination: bounded(destination, 'destination', d) }, DESTINATION_STATE_VALUES[state]) },
    deliveryLogDropped: (n) => { if (n > 0) deliveryLogDroppedC.inc(n) },
    destinationAutoDisabled: (d) => { autoDisabledC.inc({ destination: bounded(destination, 'destination', d) }) },
    setInFlight: (n) => { inFlightReaders.clear(); inFlightG.set(n) },
    trackInFlight(read) {
      // a wrapper per call, so the same function tracked twice is removed once per untrack
      const reader = () => read()
      inFlightReaders.add(reader)
      return () => { inFlightReaders.delete(reader) }
    },
    setQueueStats(provider) { queueProvider = provider; cached = undefined; lastStats = undefined },
    setDbPoolStats(provider) { poolProvider = provider },
    setToolLoadErrors(provider) { toolLoadErrors = provider },
    metricsText: () => registry.metrics(),
    close: () => runtime.close(),
  }
}
