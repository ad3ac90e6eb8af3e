import { map, merge, mergeMap, tap, type Observable } from 'rxjs'
import type { Cluster, Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { toEnvelope, type Envelope } from '../core/envelope.js'
import type { DlqPolicy } from '../core/dlq-policy.js'
import type { PipelineError } from '../core/errors.js'
import type { ToolConfig, ToolLookup } from '../core/tool.js'
import type { Database } from '../db/database.js'
import type { DeliveryLog } from '../db/delivery-log.js'
import { attemptRecorder } from './attempt-recorder.js'
import { extractToolConfig } from '../operators/extract-tool-config.js'
import { fanOut } from '../operators/fan-out.js'
import { forwardStep } from '../operators/forward.js'
import type { HoldOptions } from '../operators/hold.js'
import { markForwarded } from '../operators/mark-forwarded.js'
import type { Metrics } from '../observability/metrics.js'
import { pipelineTelemetry, type TelemetryOptions } from '../observability/pipeline-telemetry.js'
import { poisonGuard } from '../operators/poison-guard.js'
import { resolveDLQ } from '../operators/resolve-dlq.js'
import { retryBackoff } from '../operators/retry-backoff.js'
import { store } from '../operators/store.js'
import { toDLQ } from '../operators/to-dlq.js'
import { transform } from '../operators/transform.js'
import type { ForwardAttempt, ForwardSink } from '../sinks/forward.js'
import { settle } from '../operators/settle.js'
import { parkInRedis } from '../sources/delayed-retries.js'
import { fromRedisStreamBatches } from '../sources/from-redis-stream.js'
import { DEFAULT_KEYS, type StreamKeys } from '../sources/keys.js'

/** An envelope at the end of the webhook pipeline. */
export type WebhookEnvelope = Envelope & {
  readonly tool?: ToolConfig
  readonly transformed?: unknown
  readonly stored?: boolean
  /** The last forward attempt's details, set by `forwardStep`. */
  readonly forwardAttempt?: ForwardAttempt
}

/** Hooks for metrics, logs and health; every one is optional. */
export interface WebhookPipelineHooks {
  /** A settled envelope (its `outcome` says how it ended). */
  readonly onSettled?: (env: WebhookEnvelope) => void
  readonly onRetry?: (env: WebhookEnvelope, attempt: number, failure: PipelineError) => void
  /** A destination's Retry-After was longer than `maxRetryAfterMs` and was cut to it. */
  readonly onRetryAfterCapped?: (env: WebhookEnvelope, requestedMs: number) => void
  readonly onDeadLettered?: (env: Envelope, failure: PipelineError) => void
  readonly onDlqResolved?: (count: number) => void
  /** Work is held because PostgreSQL or Redis is down (true), or flows again (false). */
  readonly onHold?: HoldOptions['onHold']
  /** Errors the source recovered from (connection lost, NOGROUP). */
  readonly onSourceError?: (err: Error) => void
  /** Given once a reader of the source's unsettled-message count (for health). */
  readonly exposeInFlight?: (read: () => number) => void
  /** The source closed: whether every message it handed out was settled. */
  readonly onClosed?: (result: { drained: boolean; unsettled: number }) => void
}

/** Options of `webhookPipeline`. */
export interface WebhookPipelineOptions extends WebhookPipelineHooks {
  /** A `Redis` client, or a `Cluster` client when the stream is partitioned over a Redis Cluster. */
  readonly redis: Redis | Cluster
  readonly db: Kysely<Database>
  readonly tools: ToolLookup
  readonly forwardSink: ForwardSink
  /**
   * Where every HTTP forward attempt is written (`webhook_deliveries`), in batches off the hot path.
   * @defaultValue none: attempts are only counted in the metrics
   */
  readonly deliveryLog?: DeliveryLog
  /** This process's stable consumer name (WORKER_CONSUMER_NAME). */
  readonly consumer: string
  /** @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /**
   * Key sets of the stream partitions to read (`new StreamPartitions(…).keys`, or the subset assigned to this
   * worker). Each partition runs its own chain (source, batches, acks) and the chains are merged, so
   * `batchSize`, `maxInFlight` and the concurrencies apply per partition. @defaultValue [keys]
   */
  readonly partitions?: readonly StreamKeys[]
  /**
   * Ordering key, e.g. `(env) => env.message.event.repository`. When set, envelopes with the same key are stored,
   * forwarded in stream order: store keeps one batch in flight (`storeConcurrency` is ignored), and the forward
   * step runs the envelopes of one key one after the other, in parallel across keys. A key must map to one
   * partition (the partition key must include it). A retry parked for later (`maxInlineRetryDelayMs`) lets the
   * key's next events pass it. @defaultValue unset: full concurrency
   */
  readonly orderBy?: (env: Envelope) => string
  /** XREADGROUP COUNT: the most envelopes in one batch; each read's batch goes through every step as one. @defaultValue 100 */
  readonly batchSize?: number
  /** Unsettled messages at most. @defaultValue batchSize */
  readonly maxInFlight?: number
  /** @defaultValue 5000 */
  readonly blockMs?: number
  /** The source's `readLingerMs`: least ms between two reads at a steady rate, to read fuller batches. @defaultValue 0 */
  readonly readLingerMs?: number
  /** @defaultValue 60000 */
  readonly claimIdleMs?: number
  /** @defaultValue 10 */
  readonly maxDeliveries?: number
  /** How long (s) an event's "fanned out" marker lives (WORKER_IDEMPOTENCY_TTL). @defaultValue 86400 */
  readonly idempotencyTtlSeconds?: number
  /** Forwards (or short retries) in flight at once. @defaultValue 64 */
  readonly forwardConcurrency?: number
  /** Retries due later than this are parked in Redis. @defaultValue 5000 */
  readonly maxInlineRetryDelayMs?: number
  /** The longest destination Retry-After honoured (FORWARD_MAX_RETRY_AFTER), in ms. @defaultValue 3600000 */
  readonly maxRetryAfterMs?: number
  /** INSERT batches in flight at once (WORKER_CONCURRENCY); each holds a pool connection. @defaultValue 2 */
  readonly storeConcurrency?: number
  /**
   * Longest one store batch or one forward attempt may take (ms, WORKER_PROCESSING_TIMEOUT); over it the events
   * fail as transient `PROCESSING_TIMEOUT` and free their slot. @defaultValue 300000 (5 minutes)
   */
  readonly processingTimeoutMs?: number
  /** @defaultValue DEFAULT_DLQ_POLICY */
  readonly dlqPolicy?: DlqPolicy
  /** @defaultValue 100000 */
  readonly dlqMaxLen?: number
  /** Aborting stops reading; in-flight events finish and are acked, then the observable completes. */
  readonly signal?: AbortSignal
  /** After the signal, how long (ms) in-flight events may take. @defaultValue 10000 */
  readonly drainTimeoutMs?: number
  /**
   * Metrics, logs and spans (see `pipelineTelemetry`): `{ metrics, logger, tracing: tracing.enabled }`. The
   * hooks above still run too. @defaultValue none: no telemetry work at all
   */
  readonly telemetry?: TelemetryOptions
}

// calls both hooks; undefined when neither is set, so an operator without hooks does no work
function both<A extends unknown[]>(a: ((...args: A) => void) | undefined, b: ((...args: A) => void) | undefined) {
  if (!a || !b) return a ?? b
  return (...args: A) => { a(...args); b(...args) }
}

/**
 * The default webhook pipeline: read the stream, guard against poison entries, attach the tool,
 * transform, store, fan out to the tool's destinations (entries on the delivery stream, delivered by
 * `deliveryPipeline`), forward to `forward_url` with retries (parking long ones), mark forwarded, resolve re-queued DLQ entries,
 * dead-letter failures, and settle. Subscribe to run it; every envelope comes out at the end with its outcome.
 * Your own pipeline is the same kind of chain: copy this one and add your operators where they belong.
 *
 * @example
 * const done = webhookPipeline({ redis, db, tools: registry, forwardSink: new ForwardSink(), consumer: 'worker-1',
 *   telemetry: { metrics, logger, tracing: tracing.enabled } })
 * const sub = done.subscribe()
 */
export function webhookPipeline(options: WebhookPipelineOptions): Observable<WebhookEnvelope> {
  const { keys = DEFAULT_KEYS } = options
  const partitions = options.partitions ?? [keys]
  if (partitions.length === 0) throw new RangeError('webhookPipeline: "partitions" must list at least one partition\'s keys')
  if (options.orderBy !== undefined && typeof options.orderBy !== 'function') {
    throw new TypeError('webhookPipeline: "orderBy" must be a function of an envelope returning its ordering key')
  }
  const t = options.telemetry ? pipelineTelemetry({ ...options.telemetry, group: keys.group }) : undefined
  const hooks: Hooks = {
    onHold: both(options.onHold, t?.hold),
    onSourceError: both(options.onSourceError, t?.sourceError),
    onClosed: both(options.onClosed, t?.closed),
    onRetry: both(options.onRetry, t?.retry),
    onRetryAfterCapped: both(options.onRetryAfterCapped, t?.retryAfterCapped),
    onDlqResolved: both(options.onDlqResolved, t?.dlqResolved),
    onDeadLettered: both(options.onDeadLettered, t?.deadLettered),
    onSettled: both(options.onSettled, t?.settled),
    exposeInFlight: both(options.exposeInFlight, t?.exposeInFlight),
  }
  const chains = partitions.map((partitionKeys) => partitionChain(options, partitionKeys, hooks, t))
  return chains.length === 1 ? (chains[0] as Observable<WebhookEnvelope>) : merge(...chains)
}

interface Hooks {
  readonly onHold: WebhookPipelineHooks['onHold']
  readonly onSourceError: WebhookPipelineHooks['onSourceError']
  readonly onClosed: WebhookPipelineHooks['onClosed']
  readonly onRetry: WebhookPipelineHooks['onRetry']
  readonly onRetryAfterCapped: WebhookPipelineHooks['onRetryAfterCapped']
  readonly onDlqResolved: WebhookPipelineHooks['onDlqResolved']
  readonly onDeadLettered: WebhookPipelineHooks['onDeadLettered']
  readonly onSettled: WebhookPipelineHooks['onSettled']
  readonly exposeInFlight: WebhookPipelineHooks['exposeInFlight']
}

// one partition's source and steps; every Redis key it touches carries the partition's hash tag
function partitionChain(options: WebhookPipelineOptions, keys: StreamKeys, h: Hooks,
  t: ReturnType<typeof pipelineTelemetry> | undefined): Observable<WebhookEnvelope> {
  const { redis, db } = options
  const hold = h.onHold ? { onHold: h.onHold } : {}
  const tracing = t?.tracing ? { tracing: true } : {}
  const { onRetry, onRetryAfterCapped, onDlqResolved, onDeadLettered, onSettled, onSourceError, onClosed, exposeInFlight } = h
  // a batch keeps its order through every step; with orderBy, store takes one batch at a time (batches do not
  // overtake each other) and the forward step runs one envelope per key at a time, so the order holds end to end
  const storeConcurrency = options.orderBy ? 1 : options.storeConcurrency ?? 2
  const processingTimeoutMs = options.processingTimeoutMs ?? 300_000
  const { batchSize, maxInFlight, blockMs, readLingerMs, claimIdleMs, drainTimeoutMs, signal } = options
  return fromRedisStreamBatches({
    redis, stream: keys.stream, group: keys.group, consumer: options.consumer,
    batchSize, maxInFlight, blockMs, readLingerMs, claimIdleMs, drainTimeoutMs, signal, onError: onSourceError, onClosed, exposeInFlight,
  }).pipe(
    map(t ? (msgs) => msgs.map((msg) => t.begin(toEnvelope(msg))) : (msgs) => msgs.map(toEnvelope)),
    poisonGuard<Envelope>({ maxDeliveries: options.maxDeliveries ?? 10 }),
    extractToolConfig({ tools: options.tools, hold }),
    transform(options.orderBy ? { concurrency: 1 } : {}),
    store({ db, hold, ...tracing, timeoutMs: processingTimeoutMs, concurrency: storeConcurrency }),
    fanOut({
      redis, db, keys, hold, ...(options.idempotencyTtlSeconds ? { ttlSeconds: options.idempotencyTtlSeconds } : {}),
      // a destination's filter that fails is dead-lettered as any failure of this pipeline is
      dlq: { ...tracing, actor: `worker:${options.consumer}`, ...(options.dlqPolicy ? { policy: options.dlqPolicy } : {}),
        ...(options.dlqMaxLen ? { maxLen: options.dlqMaxLen } : {}), ...(onDeadLettered ? { onDeadLettered } : {}),
        ...(t ? { onStatusChange: t.dlqStatusChange } : {}) },
    }),
  ).pipe(
    retryBackoff<WebhookEnvelope>({
      step: forwardStep({ sink: options.forwardSink, ...tracing }),
      park: parkInRedis({ redis, keys }), hold, timeoutMs: processingTimeoutMs,
      ...(options.orderBy ? { orderBy: options.orderBy } : {}),
      ...(options.forwardConcurrency ? { concurrency: options.forwardConcurrency } : {}),
      ...(options.maxInlineRetryDelayMs !== undefined ? { maxInlineDelayMs: options.maxInlineRetryDelayMs } : {}),
      ...(onRetry ? { onRetry } : {}),
      maxRetryAfterMs: options.maxRetryAfterMs, onRetryAfterCapped,
      onStepResult: attemptRecorder(options.deliveryLog, options.telemetry?.metrics),
    }),
    markForwarded({ db, hold }),
    resolveDLQ({ db, hold, ...(onDlqResolved ? { onResolved: onDlqResolved } : {}) }),
    toDLQ({
      db, redis, keys, hold, ...tracing, actor: `worker:${options.consumer}`,
      ...(options.dlqPolicy ? { policy: options.dlqPolicy } : {}),
      ...(options.dlqMaxLen ? { maxLen: options.dlqMaxLen } : {}),
      ...(onDeadLettered ? { onDeadLettered } : {}),
      ...(t ? { onStatusChange: t.dlqStatusChange } : {}),
    }),
    // no idempotency marker per event: the primary key (tool_id, id) already makes the store idempotent, and
    // store tells a row that was there (duplicate) from a new one; Redis keeps only ingest's delivery-seen set
    settle({ hold }),
    // the settled batch leaves the pipeline envelope by envelope, for the subscriber's hooks
    mergeMap((envs) => envs),
    tap((env) => onSettled?.(env)),
  )
}
