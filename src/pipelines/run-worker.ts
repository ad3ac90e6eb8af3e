import { map, mergeMap, type Subscription } from 'rxjs'
import type { Cluster, Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { toEnvelope, type Envelope } from '../core/envelope.js'
import { isPipelineError, PipelineError } from '../core/errors.js'
import type { StreamEvent } from '../core/event.js'
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../core/tool.js'
import type { Database } from '../db/database.js'
import { pipelineTelemetry } from '../observability/pipeline-telemetry.js'
import { dedupe } from '../operators/dedupe.js'
import { poisonGuard } from '../operators/poison-guard.js'
import { retryBackoff } from '../operators/retry-backoff.js'
import { toDLQ } from '../operators/to-dlq.js'
import { settle } from '../operators/settle.js'
import { parkInRedis, startDelayedRetries } from '../sources/delayed-retries.js'
import { fromRedisStreamBatches } from '../sources/from-redis-stream.js'
import { DEFAULT_KEYS, type StreamKeys } from '../sources/keys.js'
import type { WebhookPipelineOptions } from './webhook.js'

/** What your `process` function gets besides the event. */
export interface ProcessContext {
  /** The stream entry id, e.g. `"1718000000000-0"`. */
  readonly streamId: string
  /** How many times the group delivered this entry (1 on the first read). */
  readonly deliveryCount: number
  /** Retries of this event so far (0 on the first attempt). */
  readonly attempt: number
  /** Aborts when the attempt ran over `processingTimeoutMs`: stop your own work then (its result is ignored). */
  readonly signal: AbortSignal
}

/**
 * Options of `runWorker`. The source, DLQ and telemetry options mean what they mean for `webhookPipeline`;
 * `processingTimeoutMs` bounds one call of `process` (default 5 minutes).
 */
export interface RunWorkerOptions extends Pick<WebhookPipelineOptions, 'batchSize' | 'maxInFlight' | 'blockMs' | 'claimIdleMs' |
  'maxDeliveries' | 'dlqPolicy' | 'dlqMaxLen' | 'drainTimeoutMs' | 'telemetry' | 'processingTimeoutMs'> {
  /**
   * How long an event id stays known as done (WORKER_IDEMPOTENCY_TTL): your `process` has no primary key to fall
   * back on, so this worker keeps an idempotency marker per event. @defaultValue 86400
   */
  readonly idempotencyTtlSeconds?: number
  /** Your ioredis client; the worker duplicates the connections it reads with. */
  readonly redis: Redis | Cluster
  /** Database of the DLQ table `webhook_dlq` (run `migrateToLatest` first). */
  readonly db: Kysely<Database>
  /** Your processing: resolve when the event is done; throw to fail it (see `runWorker`). */
  readonly process: (event: StreamEvent, ctx: ProcessContext) => Promise<void>
  /** This process's stable consumer name. */
  readonly consumer: string
  /** Stream, group, DLQ stream and idempotency names. @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** Retries of a transient failure. @defaultValue DEFAULT_RETRY_POLICY (5 retries from 1 s, doubling, within 30 min) */
  readonly retryPolicy?: RetryPolicy
  /** Calls of `process` in flight at once. @defaultValue 16 */
  readonly concurrency?: number
  /** Told about every settled event with its outcome (`processed`, `duplicate`, `dead_lettered`, `parked`). */
  readonly onSettled?: (env: Envelope) => void
}

/** A running worker. */
export interface RunningWorker {
  /** Resolves once the worker stopped: after `close()`, or when the pipeline broke down (then it rejects). */
  readonly done: Promise<{ drained: boolean }>
  /** Stops reading; in-flight events finish (up to `drainTimeoutMs`) and are acked. Idempotent. */
  close(): Promise<{ drained: boolean }>
}

const asFailure = (err: unknown): PipelineError => (isPipelineError(err) ? err
  : new PipelineError('transient', 'PROCESS_FAILED', `your process function failed: ${(err as Error)?.message ?? String(err)}`, { cause: err }))

/**
 * Runs your own processing with the whole machinery of the webhook worker, from one async function: consumer
 * group reads with credit-based backpressure, claims of a dead consumer's entries, the poison guard,
 * idempotency on the event id, retries with backoff (long ones parked in Redis), the processing time limit,
 * the DLQ (stream and table), batched acks and telemetry. `process` resolving means done (the event is acked
 * and marked so a redelivery is skipped). Throwing fails the event: a `PipelineError('permanent', …)` goes to
 * the DLQ at once, anything else is transient (retried, then dead-lettered). Delivery is at least once: a crash
 * before the ack, or a second copy of an event id read while the first is still in flight, runs `process`
 * again, so make it idempotent (key your writes by `event.id`).
 *
 * @example
 * const worker = runWorker({ redis, db, consumer: 'billing-1', process: async (event, ctx) => {
 *   await billing.record(event.tenant_id, event.payload, { signal: ctx.signal })
 * } })
 * process.once('SIGTERM', () => void worker.close())
 */
export function runWorker(options: RunWorkerOptions): RunningWorker {
  const { redis, db, keys = DEFAULT_KEYS } = options
  if (typeof options.process !== 'function') throw new TypeError('runWorker: "process" must be an async function (event, ctx) => void')
  if (!options.consumer) throw new TypeError('runWorker: "consumer" must be a stable, non-empty consumer name such as "billing-1"')
  const policy = options.retryPolicy ?? DEFAULT_RETRY_POLICY
  const t = options.telemetry ? pipelineTelemetry({ ...options.telemetry, group: keys.group }) : undefined
  const step = async <E extends Envelope>(env: E, signal?: AbortSignal): Promise<E> => {
    const { message } = env
    try {
      await options.process(message.event, {
        streamId: message.streamId, deliveryCount: message.deliveryCount, attempt: env.attempts, signal: signal ?? new AbortController().signal,
      })
      return { ...env, outcome: 'processed' as const }
    } catch (err) {
      return { ...env, failure: asFailure(err) }
    }
  }

  const hold = t ? { onHold: t.hold } : {}
  // built before anything runs, so a bad option throws here and not inside the running worker
  const retry = retryBackoff({
    step, policy: () => policy, park: parkInRedis({ redis, keys }), hold,
    concurrency: options.concurrency ?? 16, timeoutMs: options.processingTimeoutMs ?? 300_000,
    ...(t ? { onRetry: t.retry } : {}),
  })
  const deadLetter = toDLQ({
    db, redis, keys, hold, actor: `worker:${options.consumer}`, policy: options.dlqPolicy, maxLen: options.dlqMaxLen,
    ...(t ? { onDeadLettered: t.deadLettered, onStatusChange: t.dlqStatusChange } : {}),
  })
  const ack = settle({ redis, keys, hold, ttlSeconds: options.idempotencyTtlSeconds ?? 86_400 })
  const guard = poisonGuard<Envelope>({ maxDeliveries: options.maxDeliveries ?? 10 })
  const stop = new AbortController()
  let drained = true
  // the source closes once what it handed out settled and was acked, or at the drain timeout
  let sourceClosed: () => void = () => {}
  const sourceDone = new Promise<void>((resolve) => { sourceClosed = resolve })
  const source$ = fromRedisStreamBatches({
    redis, stream: keys.stream, group: keys.group, consumer: options.consumer, signal: stop.signal,
    batchSize: options.batchSize, maxInFlight: options.maxInFlight, blockMs: options.blockMs, claimIdleMs: options.claimIdleMs,
    drainTimeoutMs: options.drainTimeoutMs,
    onError: t ? (err) => t.sourceError(err) : () => {},
    onClosed: (result) => { drained = result.drained; t?.closed(result); sourceClosed() },
    exposeInFlight: (read) => t?.exposeInFlight(read),
  })
  const delayed = startDelayedRetries({ redis, keys, onError: t ? (err) => t.sourceError(err) : () => {} })
  let sub: Subscription | undefined
  let finish: (result: { drained: boolean }) => void = () => {}
  const done = new Promise<{ drained: boolean }>((resolve, reject) => {
    finish = resolve
    sub = source$.pipe(
      map(t ? (msgs) => msgs.map((msg) => t.begin(toEnvelope(msg))) : (msgs) => msgs.map(toEnvelope)),
      guard,
      dedupe({ redis, keys, hold }),
      retry,
      deadLetter,
      ack,
      mergeMap((envs) => envs),
    ).subscribe({
      next: (env) => { t?.settled(env); options.onSettled?.(env) },
      error: (err) => { void delayed.close(); reject(err) },
      complete: () => { void delayed.close().then(() => resolve({ drained })) },
    })
  })
  let closing: Promise<{ drained: boolean }> | undefined
  return {
    done,
    close: () => (closing ??= (async () => {
      stop.abort()
      try {
        // an event still held or in `process` at the drain timeout does not hold the close: it stays pending
        await Promise.race([done.then(() => sourceDone), sourceDone])
        finish({ drained })
        return { drained }
      } finally {
        sub?.unsubscribe()
        await delayed.close()
      }
    })()),
  }
}
