import { map, tap, type Observable } from 'rxjs'
import type { Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { toEnvelope, type Envelope } from '../core/envelope.js'
import type { DlqPolicy } from '../core/dlq-policy.js'
import type { PipelineError } from '../core/errors.js'
import type { ToolConfig, ToolLookup } from '../core/tool.js'
import type { Database } from '../db/database.js'
import { dedupe } from '../operators/dedupe.js'
import { extractToolConfig } from '../operators/extract-tool-config.js'
import { forwardStep } from '../operators/forward.js'
import type { HoldOptions } from '../operators/hold.js'
import { markForwarded } from '../operators/mark-forwarded.js'
import { pipelineTelemetry, type TelemetryOptions } from '../observability/pipeline-telemetry.js'
import { poisonGuard } from '../operators/poison-guard.js'
import { resolveDLQ } from '../operators/resolve-dlq.js'
import { retryBackoff } from '../operators/retry-backoff.js'
import { store } from '../operators/store.js'
import { toDLQ } from '../operators/to-dlq.js'
import { transform } from '../operators/transform.js'
import type { ForwardSink } from '../sinks/forward.js'
import { settle } from '../sinks/settle.js'
import { parkInRedis } from '../sources/delayed-retries.js'
import { fromRedisStream } from '../sources/from-redis-stream.js'
import { DEFAULT_KEYS, type StreamKeys } from '../sources/keys.js'

/** An envelope at the end of the webhook pipeline. */
export type WebhookEnvelope = Envelope & {
  readonly tool?: ToolConfig
  readonly transformed?: unknown
  readonly stored?: boolean
}

/** Hooks for metrics, logs and health; every one is optional. */
export interface WebhookPipelineHooks {
  /** A settled envelope (its `outcome` says how it ended). */
  readonly onSettled?: (env: WebhookEnvelope) => void
  readonly onRetry?: (env: WebhookEnvelope, attempt: number, failure: PipelineError) => void
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
  readonly redis: Redis
  readonly db: Kysely<Database>
  readonly tools: ToolLookup
  readonly forwardSink: ForwardSink
  /** This process's stable consumer name (WORKER_CONSUMER_NAME). */
  readonly consumer: string
  /** @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** XREADGROUP COUNT. @defaultValue 100 */
  readonly batchSize?: number
  /** Unsettled messages at most. @defaultValue batchSize */
  readonly maxInFlight?: number
  /** @defaultValue 5000 */
  readonly blockMs?: number
  /** @defaultValue 60000 */
  readonly claimIdleMs?: number
  /** @defaultValue 10 */
  readonly maxDeliveries?: number
  /** How long an event id stays known as done (WORKER_IDEMPOTENCY_TTL). @defaultValue 86400 */
  readonly idempotencyTtlSeconds?: number
  /** Forwards (or short retries) in flight at once. @defaultValue 64 */
  readonly forwardConcurrency?: number
  /** Retries due later than this are parked in Redis. @defaultValue 5000 */
  readonly maxInlineRetryDelayMs?: number
  /** INSERT batches in flight at once. @defaultValue 2 */
  readonly storeConcurrency?: number
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
 * The default webhook pipeline: read the stream, guard against poison entries, dedupe, attach the tool,
 * transform, store, forward with retries (parking long ones), mark forwarded, resolve re-queued DLQ entries,
 * dead-letter failures, and settle. Subscribe to run it; every envelope comes out at the end with its outcome.
 * Your own pipeline is the same kind of chain: copy this one and add your operators where they belong.
 *
 * @example
 * const done = webhookPipeline({ redis, db, tools: registry, forwardSink: new ForwardSink(), consumer: 'worker-1',
 *   telemetry: { metrics, logger, tracing: tracing.enabled } })
 * const sub = done.subscribe()
 */
export function webhookPipeline(options: WebhookPipelineOptions): Observable<WebhookEnvelope> {
  const { redis, db, keys = DEFAULT_KEYS } = options
  const t = options.telemetry ? pipelineTelemetry({ ...options.telemetry, group: keys.group }) : undefined
  const onHold = both(options.onHold, t?.hold)
  const hold = onHold ? { onHold } : {}
  const tracing = t?.tracing ? { tracing: true } : {}
  const onSourceError = both(options.onSourceError, t?.sourceError)
  const onClosed = both(options.onClosed, t?.closed)
  const onRetry = both(options.onRetry, t?.retry)
  const onDlqResolved = both(options.onDlqResolved, t?.dlqResolved)
  const onDeadLettered = both(options.onDeadLettered, t?.deadLettered)
  const onSettled = both(options.onSettled, t?.settled)
  const exposeInFlight = both(options.exposeInFlight, t?.exposeInFlight)
  return fromRedisStream({
    redis, stream: keys.stream, group: keys.group, consumer: options.consumer,
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...(options.maxInFlight !== undefined ? { maxInFlight: options.maxInFlight } : {}),
    ...(options.blockMs !== undefined ? { blockMs: options.blockMs } : {}),
    ...(options.claimIdleMs !== undefined ? { claimIdleMs: options.claimIdleMs } : {}),
    ...(options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(onSourceError ? { onError: onSourceError } : {}),
    ...(onClosed ? { onClosed } : {}),
    ...(exposeInFlight ? { exposeInFlight } : {}),
  }).pipe(
    map(t ? (msg) => t.begin(toEnvelope(msg)) : toEnvelope),
    poisonGuard({ maxDeliveries: options.maxDeliveries ?? 10 }),
    dedupe({ redis, keys, hold }),
    extractToolConfig({ tools: options.tools, hold }),
    transform(),
    store({ db, hold, ...tracing, ...(options.storeConcurrency ? { concurrency: options.storeConcurrency } : {}) }),
  ).pipe(
    retryBackoff({
      step: forwardStep({ sink: options.forwardSink, ...tracing }),
      park: parkInRedis({ redis, keys }), hold,
      ...(options.forwardConcurrency ? { concurrency: options.forwardConcurrency } : {}),
      ...(options.maxInlineRetryDelayMs !== undefined ? { maxInlineDelayMs: options.maxInlineRetryDelayMs } : {}),
      ...(onRetry ? { onRetry } : {}),
    }),
    markForwarded({ db, hold }),
    resolveDLQ({ db, hold, ...(onDlqResolved ? { onResolved: onDlqResolved } : {}) }),
    toDLQ({
      db, redis, keys, hold, ...tracing, actor: `worker:${options.consumer}`,
      ...(options.dlqPolicy ? { policy: options.dlqPolicy } : {}),
      ...(options.dlqMaxLen ? { maxLen: options.dlqMaxLen } : {}),
      ...(onDeadLettered ? { onDeadLettered } : {}),
    }),
    settle({ redis, keys, hold, ...(options.idempotencyTtlSeconds ? { ttlSeconds: options.idempotencyTtlSeconds } : {}) }),
    tap((env) => onSettled?.(env)),
  )
}
