import { defer, finalize, map, merge, mergeMap, tap, type Observable } from 'rxjs'
import type { Cluster, Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { DEFAULT_RETRY_POLICY } from '../core/retry-policy.js'
import { toEnvelope, type Envelope } from '../core/envelope.js'
import type { DlqPolicy } from '../core/dlq-policy.js'
import type { PipelineError } from '../core/errors.js'
import type { ToolConfig, ToolLookup } from '../core/tool.js'
import type { Database } from '../db/database.js'
import { dedupe } from '../operators/dedupe.js'
import { deliverStep } from '../operators/deliver.js'
import { extractToolConfig } from '../operators/extract-tool-config.js'
import type { HoldOptions } from '../operators/hold.js'
import { poisonGuard } from '../operators/poison-guard.js'
import { recordDeliveries } from '../operators/record-deliveries.js'
import { resolveDestination, type WithDestination } from '../operators/resolve-destination.js'
import { retryBackoff } from '../operators/retry-backoff.js'
import { settle } from '../operators/settle.js'
import { toDLQ } from '../operators/to-dlq.js'
import { TransformPool, type TransformPoolOptions } from '../operators/transform-pool.js'
import type { ForwardAttempt, ForwardSink } from '../sinks/forward.js'
import type { DeliveryLog } from '../db/delivery-log.js'
import type { Metrics } from '../observability/metrics.js'
import { attemptRecorder } from './attempt-recorder.js'
import { destinationAutoDisabler, type AutoDisableOptions } from './auto-disable.js'
import { parkInRedis } from '../sources/delayed-retries.js'
import { DESTINATION_FIELD, REPLAY_FIELD } from '../sources/enqueue-deliveries.js'
import { fromRedisStreamBatches } from '../sources/from-redis-stream.js'
import { DEFAULT_KEYS, deliveredKey, type StreamKeys } from '../sources/keys.js'

/** An envelope at the end of the delivery pipeline: one (event, destination) pair. */
export type DeliveryEnvelope = Envelope & { readonly tool?: ToolConfig; readonly forwardAttempt?: ForwardAttempt } & WithDestination

/** Options of `deliveryPipeline`. */
export interface DeliveryPipelineOptions {
  /** A `Redis` client, or a `Cluster` client when the streams are partitioned. */
  readonly redis: Redis | Cluster
  readonly db: Kysely<Database>
  readonly tools: ToolLookup
  readonly forwardSink: ForwardSink
  /** This process's stable consumer name (WORKER_CONSUMER_NAME). */
  readonly consumer: string
  /** @defaultValue DEFAULT_KEYS (stream `webhook_deliveries`, group `webhook_delivery_workers`) */
  readonly keys?: StreamKeys
  /** Key sets of the partitions to read, as for `webhookPipeline`. @defaultValue [keys] */
  readonly partitions?: readonly StreamKeys[]
  /** XREADGROUP COUNT: the most deliveries in one batch; each read's batch goes through every step as one. @defaultValue 100 */
  readonly batchSize?: number
  /** Unsettled deliveries at most. @defaultValue batchSize */
  readonly maxInFlight?: number
  /** @defaultValue 5000 */
  readonly blockMs?: number
  /** The source's `readLingerMs`: least ms between two reads at a steady rate, to read fuller batches. @defaultValue 0 */
  readonly readLingerMs?: number
  /** @defaultValue 60000 */
  readonly claimIdleMs?: number
  /** @defaultValue 10 */
  readonly maxDeliveries?: number
  /** How long (s) a delivered pair stays known as done (WORKER_IDEMPOTENCY_TTL). @defaultValue 86400 */
  readonly idempotencyTtlSeconds?: number
  /** Deliveries in flight at once. @defaultValue 64 */
  readonly concurrency?: number
  /**
   * Retries due within this many ms wait in process; later ones are parked. The default parks every retry, so a
   * failing destination's retries never hold the credit other destinations' deliveries need. @defaultValue 0
   */
  readonly maxInlineRetryDelayMs?: number
  /** The longest destination Retry-After honoured (FORWARD_MAX_RETRY_AFTER), in ms. @defaultValue 3600000 */
  readonly maxRetryAfterMs?: number
  /** Longest one delivery attempt may take (ms, WORKER_PROCESSING_TIMEOUT). @defaultValue 300000 */
  readonly processingTimeoutMs?: number
  /** @defaultValue DEFAULT_DLQ_POLICY */
  readonly dlqPolicy?: DlqPolicy
  /** @defaultValue 100000 */
  readonly dlqMaxLen?: number
  /** The worker processes of the destinations' transforms. */
  readonly pool?: TransformPoolOptions
  /** Aborting stops reading; deliveries in flight finish and are acked, then the observable completes. */
  readonly signal?: AbortSignal
  /** After the signal, how long (ms) deliveries in flight may take. @defaultValue 10000 */
  readonly drainTimeoutMs?: number
  /** Where every attempt is written (`webhook_deliveries`). @defaultValue none: attempts are not logged */
  readonly deliveryLog?: DeliveryLog
  /**
   * Counts and times each attempt per destination (`webhook_forward_attempts_total`, `webhook_forward_duration_seconds`),
   * and counts the DLQ rows that became `failed` (`webhook_dlq_retries_total`).
   */
  readonly metrics?: Metrics
  /**
   * The `auto_disable_after` rule (`destinationAutoDisabler`): how to disable a destination that has failed for
   * that long. @defaultValue unset: destinations are never disabled automatically
   */
  readonly autoDisable?: Omit<AutoDisableOptions, 'redis' | 'keys'>
  /** A settled delivery (its `outcome` says how it ended). */
  readonly onSettled?: (env: DeliveryEnvelope) => void
  readonly onRetry?: (env: DeliveryEnvelope, attempt: number, failure: PipelineError) => void
  readonly onDeadLettered?: (env: Envelope, failure: PipelineError) => void
  readonly onHold?: HoldOptions['onHold']
  readonly onSourceError?: (err: Error) => void
  readonly onClosed?: (result: { drained: boolean; unsettled: number }) => void
}

/**
 * The delivery pipeline: reads the delivery stream the fan-out writes (one entry per event and destination, its
 * own consumer group), guards against poison entries, dedupes each pair, attaches the tool and the destination,
 * delivers with the destination's retry policy (each retry parked, so a dead destination holds no credit),
 * records the pair's state on the event's row, dead-letters what failed, and settles. Each pair has its own
 * retries and outcome, so one slow or dead destination never delays another's deliveries.
 *
 * @example
 * const sub = deliveryPipeline({ redis, db, tools: registry, forwardSink: new ForwardSink(), consumer: 'worker-1' }).subscribe()
 */
export function deliveryPipeline(options: DeliveryPipelineOptions): Observable<DeliveryEnvelope> {
  const { keys = DEFAULT_KEYS } = options
  const partitions = options.partitions ?? [keys]
  if (partitions.length === 0) throw new RangeError('deliveryPipeline: "partitions" must list at least one partition\'s keys')
  // checks the pool's options now; its workers start with a first transform
  new TransformPool(options.pool)
  const chains = partitions.map((partitionKeys) => partitionChain(options, partitionKeys))
  return chains.length === 1 ? (chains[0] as Observable<DeliveryEnvelope>) : merge(...chains)
}

// both step-result hooks, either of which may be unset
function stepResults(record: ((env: DeliveryEnvelope, next: number | undefined) => void) | undefined,
  autoDisable: ((env: DeliveryEnvelope) => void) | undefined): ((env: DeliveryEnvelope, next: number | undefined) => void) | undefined {
  if (!record || !autoDisable) return record ?? autoDisable
  return (env, next) => {
    record(env, next)
    autoDisable(env)
  }
}

function partitionChain(options: DeliveryPipelineOptions, keys: StreamKeys): Observable<DeliveryEnvelope> {
  const { redis, db, onHold } = options
  const hold = onHold ? { onHold } : {}
  // a replay delivers a pair again: its own key, so the first delivery's does not make it a duplicate
  const key = (env: Envelope) => {
    const pair = deliveredKey(keys, env.message.fields[DESTINATION_FIELD] ?? '', env.message.event.tool_id, env.message.event.id)
    const replay = env.message.fields[REPLAY_FIELD]
    return replay === undefined ? pair : `${pair}:${replay}`
  }
  return defer(() => {
    const pool = new TransformPool(options.pool)
    const { batchSize, maxInFlight, blockMs, readLingerMs, claimIdleMs, drainTimeoutMs, signal, onClosed } = options
    return fromRedisStreamBatches({
      redis, stream: keys.deliveryStream, group: keys.deliveryGroup, consumer: options.consumer,
      batchSize, maxInFlight, blockMs, readLingerMs, claimIdleMs, drainTimeoutMs, signal, onError: options.onSourceError, onClosed,
    }).pipe(
      map((msgs) => msgs.map(toEnvelope)),
      poisonGuard<Envelope>({ maxDeliveries: options.maxDeliveries ?? 10 }),
      dedupe({ redis, keys, hold, key }),
      extractToolConfig({ tools: options.tools, hold }),
      resolveDestination(),
    ).pipe(
      retryBackoff<DeliveryEnvelope>({
        step: deliverStep({ sink: options.forwardSink, pool }),
        policy: (env) => env.destination?.retryPolicy ?? env.tool?.retryPolicy ?? DEFAULT_RETRY_POLICY,
        park: parkInRedis({ redis, keys }), hold, timeoutMs: options.processingTimeoutMs ?? 300_000,
        maxInlineDelayMs: options.maxInlineRetryDelayMs ?? 0,
        ...(options.concurrency ? { concurrency: options.concurrency } : {}),
        ...(options.onRetry ? { onRetry: options.onRetry } : {}),
        ...(options.maxRetryAfterMs !== undefined ? { maxRetryAfterMs: options.maxRetryAfterMs } : {}),
        onStepResult: stepResults(attemptRecorder(options.deliveryLog, options.metrics),
          options.autoDisable ? destinationAutoDisabler({ redis, keys, ...options.autoDisable }) : undefined),
      }),
      recordDeliveries({ db, hold }),
      toDLQ({
        db, redis, keys, hold, actor: `delivery:${options.consumer}`,
        ...(options.dlqPolicy ? { policy: options.dlqPolicy } : {}),
        ...(options.dlqMaxLen ? { maxLen: options.dlqMaxLen } : {}),
        ...(options.onDeadLettered ? { onDeadLettered: options.onDeadLettered } : {}),
        ...(options.metrics ? { onStatusChange: (change, count) => options.metrics?.dlqRetry(change, count) } : {}),
      }),
      settle({ redis, keys, hold, key, ...(options.idempotencyTtlSeconds ? { ttlSeconds: options.idempotencyTtlSeconds } : {}) }),
      // the settled batch leaves the pipeline delivery by delivery, for the subscriber's hooks
      mergeMap((envs) => envs),
      tap((env) => options.onSettled?.(env)),
      finalize(() => void pool.close()),
    )
  })
}
