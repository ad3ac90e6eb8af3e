import type { Cluster, Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import type { Config } from '../config/load-config.js'
import type { Database } from '../db/database.js'
import { DeliveryLog } from '../db/delivery-log.js'
import { ToolStore } from '../db/tool-store.js'
import { formatDuration } from '../core/duration.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import { storeDisabler } from '../pipelines/auto-disable.js'
import { deliveryPipeline } from '../pipelines/delivery.js'
import { webhookPipeline } from '../pipelines/webhook.js'
import { breakerBoard } from '../sinks/breaker-board.js'
import { CircuitBreakers } from '../sinks/circuit-breaker.js'
import { DestinationRateLimiter } from '../sinks/destination-rate-limit.js'
import { ForwardSink } from '../sinks/forward.js'
import { startDelayedRetries } from '../sources/delayed-retries.js'
import { StreamClient } from '../sources/stream-client.js'
import { startStreamTrimmer } from '../sources/stream-trimmer.js'
import type { Queue } from './connect.js'
import type { ServiceState } from './health.js'
import { closeInOrder, type Closer } from './shutdown.js'
import type { ServiceTelemetry } from './telemetry.js'

/** Options of `startWorker`. */
export interface StartWorkerOptions {
  readonly config: Config
  readonly redis: Redis | Cluster
  readonly db: Kysely<Database>
  readonly queue: Queue
  readonly tools: ToolRegistry
  readonly telemetry: ServiceTelemetry
  /** Fed by the pipeline's hooks (settled, poison, holds, in flight); health reads it. */
  readonly state: ServiceState
}

/** The running worker role (what `startWorker` returns); `shutdown` stops it in two steps. */
export interface WorkerPart {
  /** Resolves once every partition's source closed: drained only if each one did; not drained if the pipeline broke. */
  readonly closed: Promise<{ drained: boolean }>
  /** Stops reading: the sources stop XREADGROUP, what is in flight finishes and is acked. */
  stopReading(): void
  /**
   * Unsubscribes the pipelines, then closes the delayed-retry schedulers, the forward sink, the delivery log (writing
   * what it holds), takes this worker's breakers off the board, and closes the trimmers, in that order.
   */
  close(): Promise<void>
}

/**
 * Starts the worker role: the webhook pipeline and the delivery pipeline (fan-out to destinations) over the
 * partitions this worker reads, a delayed-retry scheduler
 * per partition, and (STREAM_TRIM_INTERVAL) a group-aware trimmer per partition. A pipeline that breaks down
 * sets `process.exitCode` to 1 so the orchestrator restarts the process.
 *
 * @example
 * const worker = startWorker({ config, redis, db: ctx.db.db, queue, tools, telemetry, state })
 * worker.stopReading(); await worker.closed; await worker.close()
 */
export function startWorker(options: StartWorkerOptions): WorkerPart {
  const { config, redis, db, queue, tools, telemetry, state } = options
  const { partitions, readKeys } = queue
  const keys = config.keys
  const orderFields = config.scale.orderBy
  const abort = new AbortController()
  const board = breakerBoard(redis, keys.breakerStates, config.worker.consumerName)
  const breakers = new CircuitBreakers({
    failureThreshold: config.forward.breakerFailures, coolDownMs: config.forward.breakerCoolDownMs,
    maxCoolDownMs: 30 * config.forward.breakerCoolDownMs,
    onStateChange: (destination, breakerState, snapshot) => { telemetry.metrics.destinationState(destination, breakerState); void board(snapshot) },
  })
  const forwardSink = new ForwardSink({
    timeoutMs: config.forward.timeoutMs, allowPrivate: config.forward.allowPrivate, breakers,
    rateLimiter: new DestinationRateLimiter({ redis, prefix: keys.destinationRateLimitPrefix }),
  })
  const deliveryLog = new DeliveryLog({
    db, onDropped: (n) => telemetry.metrics.deliveryLogDropped(n),
    onError: (err) => telemetry.logger.warn({ err_message: err.message }, 'delivery log write failed; attempts stay queued'),
  })
  let markClosed: (r: { drained: boolean }) => void = () => {}
  const closed = new Promise<{ drained: boolean }>((resolve) => { markClosed = resolve })
  // two sources per partition read (events, deliveries): closed once all are, drained only if each one is
  let openSources = readKeys.length * 2
  let allDrained = true
  const sourceClosed = (r: { drained: boolean }) => {
    allDrained &&= r.drained
    if (--openSources === 0) markClosed({ drained: allDrained })
  }
  const subscription = webhookPipeline({
    redis, db, tools, forwardSink, deliveryLog, keys, consumer: config.worker.consumerName,
    ...(partitions.count > 1 ? { partitions: readKeys } : {}),
    ...(orderFields ? { orderBy: (env) => orderFields.map((f) => env.message.event[f]).join('\u0000') } : {}),
    batchSize: config.worker.batchSize, maxInFlight: config.worker.maxInFlight, blockMs: config.worker.blockTimeoutMs, readLingerMs: config.worker.readLingerMs,
    claimIdleMs: config.worker.claimIdleMs, maxDeliveries: config.worker.maxDeliveries,
    idempotencyTtlSeconds: Math.max(1, Math.round(config.worker.idempotencyTtlMs / 1000)),
    // every in-flight message may wait in the forward step; the per-destination bulkhead bounds the requests
    storeConcurrency: config.worker.concurrency, forwardConcurrency: config.worker.maxInFlight, drainTimeoutMs: config.worker.shutdownTimeoutMs,
    maxRetryAfterMs: config.forward.maxRetryAfterMs,
    signal: abort.signal, telemetry: telemetry.pipeline,
    processingTimeoutMs: config.processingTimeoutMs, dlqPolicy: config.dlq.policy, dlqMaxLen: config.dlq.maxLen,
    onSettled: () => { state.processed += 1; state.lastSettledAt = Date.now() },
    // telemetry logs dead letters, holds and source errors; these hooks only feed health
    onDeadLettered: (_env, failure) => { if (failure.code === 'POISON') state.poison.push(Date.now()) },
    onHold: (held) => { state.holds += held ? 1 : -1 },
    // one reader per partition this worker reads: health sums them, as webhook_in_flight does
    exposeInFlight: (read) => { const others = state.inFlight; state.inFlight = () => others() + read() },
    onClosed: sourceClosed,
  }).subscribe({
    error: (err) => { telemetry.logger.error({ err }, 'the pipeline broke down; exiting so the orchestrator restarts it'); process.exitCode = 1; markClosed({ drained: false }) },
  })
  const deliveries = startDeliveries(options, forwardSink, deliveryLog, abort.signal, sourceClosed, () => markClosed({ drained: false }))
  const closers: Closer[] = []
  // each partition parks its retries in its own set (same hash tag), so each gets its scheduler
  for (const partKeys of readKeys) {
    const delayed = startDelayedRetries({ redis, keys: partKeys, onError: (err) => telemetry.logger.warn({ err_message: err.message }, 'delayed-retry scheduler error') })
    closers.push(() => delayed.close())
  }
  // this worker's breakers leave the board with it, so the admin API does not show a stopped worker's state
  closers.push(() => forwardSink.close(), () => deliveryLog.close(), () => breakers.close(),
    () => Promise.all(breakers.list().map((snapshot) => board({ ...snapshot, state: 'closed' }))))
  if (config.worker.trimIntervalMs > 0) {
    // only the partitions this worker reads (the workers of a group together cover them all), each under its own
    // lease, so one of the workers reading a partition trims it; STREAM_TRIM_KEEP is split over the partitions
    // as PartitionedStreamClient.trimSafe splits it
    // the delivery stream of each partition too, under its own lease
    for (const stream of readKeys.flatMap((k) => [k.stream, k.deliveryStream])) {
      const trimmer = startStreamTrimmer({
        stream: new StreamClient({ redis, stream }),
        intervalMs: config.worker.trimIntervalMs, keep: Math.ceil(config.worker.trimKeep / partitions.count), logger: telemetry.logger,
        onTrimmed: (removed) => telemetry.metrics.streamTrimmed(removed),
      })
      closers.push(() => trimmer.close())
    }
  }
  return {
    closed,
    stopReading: () => abort.abort(),
    close: async () => {
      subscription.unsubscribe()
      deliveries.unsubscribe()
      await closeInOrder(closers)
    },
  }
}

// the delivery pipeline over the same partitions: each (event, destination) pair the fan-out enqueued
function startDeliveries(options: StartWorkerOptions, forwardSink: ForwardSink, deliveryLog: DeliveryLog, signal: AbortSignal,
  onClosed: (r: { drained: boolean }) => void, onBreakdown: () => void) {
  const { config, redis, db, queue, tools, telemetry, state } = options
  const store = new ToolStore({ db, ...(config.encryptionKey ? { encryptionKey: config.encryptionKey } : {}),
    ...(config.encryptionKeyPrevious ? { encryptionKeyPrevious: config.encryptionKeyPrevious } : {}) })
  return deliveryPipeline({
    redis, db, tools, forwardSink, deliveryLog, metrics: telemetry.metrics, keys: config.keys, consumer: config.worker.consumerName,
    ...(queue.partitions.count > 1 ? { partitions: queue.readKeys } : {}),
    batchSize: config.worker.batchSize, maxInFlight: config.worker.maxInFlight, blockMs: config.worker.blockTimeoutMs, readLingerMs: config.worker.readLingerMs,
    claimIdleMs: config.worker.claimIdleMs, maxDeliveries: config.worker.maxDeliveries,
    idempotencyTtlSeconds: Math.max(1, Math.round(config.worker.idempotencyTtlMs / 1000)),
    concurrency: config.worker.maxInFlight, drainTimeoutMs: config.worker.shutdownTimeoutMs,
    maxRetryAfterMs: config.forward.maxRetryAfterMs, signal,
    processingTimeoutMs: config.processingTimeoutMs, dlqPolicy: config.dlq.policy, dlqMaxLen: config.dlq.maxLen,
    onDeadLettered: (_env, failure) => { if (failure.code === 'POISON') state.poison.push(Date.now()) },
    onHold: (held) => { state.holds += held ? 1 : -1 },
    onSourceError: (err) => telemetry.logger.warn({ err_message: err.message }, 'delivery stream source error'),
    onClosed,
    autoDisable: {
      disable: storeDisabler(store, tools, (msg, fields) => telemetry.logger.warn(fields, msg)),
      onDisabled: (toolId, destinationId, failingForMs) => {
        telemetry.metrics.destinationAutoDisabled(`${toolId}/${destinationId}`)
        telemetry.logger.warn({ tool_id: toolId, destination_id: destinationId },
          `destination "${destinationId}" of tool "${toolId}" was disabled: every delivery failed for ${formatDuration(failingForMs)}, past its auto_disable_after; its pending deliveries are dead-lettered (DESTINATION_DISABLED). Enable it with hookstream destinations enable, then retry them from the DLQ`)
      },
      onError: (err) => telemetry.logger.warn({ err_message: err.message }, 'auto_disable_after check failed'),
    },
  }).subscribe({
    error: (err) => { telemetry.logger.error({ err }, 'the delivery pipeline broke down; exiting so the orchestrator restarts it'); process.exitCode = 1; onBreakdown() },
  })
}
