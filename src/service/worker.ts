import type { Cluster, Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import type { Config } from '../config/load-config.js'
import type { Database } from '../db/database.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import { webhookPipeline } from '../pipelines/webhook.js'
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
  /** Unsubscribes the pipeline, then closes the delayed-retry schedulers, the forward sink and the trimmers, in that order. */
  close(): Promise<void>
}

/**
 * Starts the worker role: the webhook pipeline over the partitions this worker reads, a delayed-retry scheduler
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
  const forwardSink = new ForwardSink({ timeoutMs: config.forward.timeoutMs, allowPrivate: config.forward.allowPrivate })
  let markClosed: (r: { drained: boolean }) => void = () => {}
  const closed = new Promise<{ drained: boolean }>((resolve) => { markClosed = resolve })
  // one source per partition read: closed once all are, drained only if each one is
  let openSources = readKeys.length
  let allDrained = true
  const sourceClosed = (r: { drained: boolean }) => {
    allDrained &&= r.drained
    if (--openSources === 0) markClosed({ drained: allDrained })
  }
  const subscription = webhookPipeline({
    redis, db, tools, forwardSink, keys, consumer: config.worker.consumerName,
    ...(partitions.count > 1 ? { partitions: readKeys } : {}),
    ...(orderFields ? { orderBy: (env) => orderFields.map((f) => env.message.event[f]).join('\u0000') } : {}),
    batchSize: config.worker.batchSize, maxInFlight: config.worker.maxInFlight, blockMs: config.worker.blockTimeoutMs,
    claimIdleMs: config.worker.claimIdleMs, maxDeliveries: config.worker.maxDeliveries,
    // every in-flight message may wait in the forward step; the per-destination bulkhead bounds the requests
    forwardConcurrency: Math.max(config.worker.concurrency, config.worker.maxInFlight), drainTimeoutMs: config.worker.shutdownTimeoutMs,
    maxRetryAfterMs: config.forward.maxRetryAfterMs,
    signal: abort.signal, telemetry: telemetry.pipeline,
    processingTimeoutMs: config.processingTimeoutMs, dlqPolicy: config.dlq.policy, dlqMaxLen: config.dlq.maxLen,
    onSettled: () => { state.processed += 1; state.lastSettledAt = Date.now() },
    // telemetry logs dead letters, holds and source errors; these hooks only feed health
    onDeadLettered: (_env, failure) => { if (failure.code === 'POISON') state.poison.push(Date.now()) },
    onHold: (held) => { state.holds += held ? 1 : -1 },
    exposeInFlight: (read) => { state.inFlight = read },
    onClosed: sourceClosed,
  }).subscribe({
    error: (err) => { telemetry.logger.error({ err }, 'the pipeline broke down; exiting so the orchestrator restarts it'); process.exitCode = 1; markClosed({ drained: false }) },
  })
  const closers: Closer[] = []
  // each partition parks its retries in its own set (same hash tag), so each gets its scheduler
  for (const partKeys of readKeys) {
    const delayed = startDelayedRetries({ redis, keys: partKeys, onError: (err) => telemetry.logger.warn({ err_message: err.message }, 'delayed-retry scheduler error') })
    closers.push(() => delayed.close())
  }
  closers.push(() => forwardSink.close())
  if (config.worker.trimIntervalMs > 0) {
    // only the partitions this worker reads (the workers of a group together cover them all), each under its own
    // lease, so one of the workers reading a partition trims it; STREAM_TRIM_KEEP is split over the partitions
    // as PartitionedStreamClient.trimSafe splits it
    for (const partKeys of readKeys) {
      const trimmer = startStreamTrimmer({
        stream: new StreamClient({ redis, stream: partKeys.stream }),
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
      await closeInOrder(closers)
    },
  }
}
