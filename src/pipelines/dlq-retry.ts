import type { Kysely } from 'kysely'
import { DEFAULT_DLQ_POLICY, type DlqPolicy } from '../core/dlq-policy.js'
import type { Database } from '../db/database.js'
import { DlqStore, type DlqStatusListener } from '../db/dlq-store.js'
import type { RedisClient, StreamClient } from '../sources/stream-client.js'

/** Options of `startDlqRetryWorker`. */
export interface DlqRetryWorkerOptions {
  readonly db: Kysely<Database>
  /** The main stream due events go back to. */
  readonly stream: StreamClient
  /**
   * The schedule the pipeline's `toDLQ` writes into `next_retry_at` and `status` (pass the same policy to
   * both). The worker re-queues what is due and marks `failed` any due row whose `retry_count` already
   * reached `maxRounds` (e.g. after the policy was lowered). @defaultValue DEFAULT_DLQ_POLICY
   */
  readonly policy?: DlqPolicy
  /** Time between rounds, in ms. @defaultValue 5000 */
  readonly intervalMs?: number
  /** Rows re-queued per round at most. @defaultValue 100 */
  readonly batchSize?: number
  /** Who re-queued, for the audit log. @defaultValue "dlq-worker" */
  readonly actor?: string
  /** Approximate cap on the main stream for re-queued events (`MAXLEN ~`). @defaultValue unset */
  readonly streamMaxLen?: number
  /** How long `resolved` and `discarded` rows and DLQ stream entries are kept, in ms. @defaultValue 604800000 (168h) */
  readonly retentionMs?: number
  /** How often the retention clean-up runs, in ms. @defaultValue 60000 */
  readonly retentionIntervalMs?: number
  /** The DLQ stream to trim (by `MAXLEN ~ maxLen` and by age with `MINID`); unset: the stream is not trimmed here. */
  readonly dlqStream?: { readonly redis: Pick<RedisClient, 'call'>; readonly dlqStream: string; readonly maxLen?: number }
  /** Told how many rows a round re-queued (only when more than 0). */
  readonly onRequeued?: (count: number) => void
  /** Told about every status change of its rounds once committed: rows re-queued, rows marked `failed` (for metrics). */
  readonly onStatusChange?: DlqStatusListener
  /** Told about a failed round (Redis or PostgreSQL down); the next round tries again. @defaultValue ignore */
  readonly onError?: (err: Error) => void
}

/** A running DLQ retry worker. */
export interface DlqRetryWorker {
  /**
   * Runs one round now (re-queue due rows, then retention when it is due), or joins the round already
   * running; resolves with the rows re-queued (0 once closed).
   */
  runOnce(): Promise<number>
  /** Stops the timer and waits for the running round. A second call returns the same promise. */
  close(): Promise<void>
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`startDlqRetryWorker: "${name}" must be a positive integer; got ${value}`)
  return v
}

/**
 * Re-queues dead-lettered events when they are due: every `intervalMs` it locks up to `batchSize` rows in
 * status `pending` with `next_retry_at <= now()` (`FOR UPDATE SKIP LOCKED`, so several processes share the
 * work and never re-queue one row twice), XADDs each stored event back on the main stream with
 * `retry_count + 1` and every field kept, marks the rows `retrying` and writes `dlq_requeued` audit rows, in
 * one transaction (Redis down: it rolls back and the rows stay pending). The pipeline then resolves the row
 * when the event goes through, or sets it back to `pending` (or `failed` after `maxRounds`) when it fails.
 * It also deletes `resolved`/`discarded` rows older than `retentionMs` and trims the DLQ stream.
 *
 * @example
 * const worker = startDlqRetryWorker({ db, stream: new StreamClient({ redis, stream: keys.stream }),
 *   dlqStream: { redis, dlqStream: keys.dlqStream }, onError: (err) => log.warn({ err }, 'DLQ round failed') })
 * await worker.close()
 */
export function startDlqRetryWorker(options: DlqRetryWorkerOptions): DlqRetryWorker {
  if (!options?.db) throw new TypeError('startDlqRetryWorker: "db" must be a Kysely instance (see createDb)')
  if (!options.stream) throw new TypeError('startDlqRetryWorker: "stream" must be a StreamClient of the main stream')
  const intervalMs = positive('intervalMs', options.intervalMs, 5000)
  const batchSize = positive('batchSize', options.batchSize, 100)
  const retentionMs = positive('retentionMs', options.retentionMs, 168 * 3_600_000)
  const retentionIntervalMs = positive('retentionIntervalMs', options.retentionIntervalMs, 60_000)
  const dlqMaxLen = positive('dlqStream.maxLen', options.dlqStream?.maxLen, 100_000)
  const { maxRounds } = options.policy ?? DEFAULT_DLQ_POLICY
  if (!Number.isInteger(maxRounds) || maxRounds < 0) {
    throw new RangeError(`startDlqRetryWorker: "policy.maxRounds" must be an integer of at least 0; got ${maxRounds}`)
  }
  const actor = options.actor ?? 'dlq-worker'
  const store = new DlqStore({ db: options.db, stream: options.stream, ...(options.streamMaxLen !== undefined ? { maxLen: options.streamMaxLen } : {}),
    ...(options.onStatusChange ? { onStatusChange: options.onStatusChange } : {}) })
  const onError = options.onError ?? (() => {})
  let lastRetentionAt = 0
  let running: Promise<number> | undefined
  let closing: Promise<void> | undefined

  const retention = async () => {
    lastRetentionAt = Date.now()
    await store.purge({ olderThanMs: retentionMs })
    const trim = options.dlqStream
    if (trim) {
      await trim.redis.call('XTRIM', trim.dlqStream, 'MAXLEN', '~', dlqMaxLen)
      // the DLQ stream has no consumer group, so trimming by entry time drops nothing anyone still reads;
      // exact (no "~"): an approximate MINID keeps a whole old macro node, which can be all of a small stream
      await trim.redis.call('XTRIM', trim.dlqStream, 'MINID', `${Math.max(0, Date.now() - retentionMs)}-0`)
    }
  }

  const round = async (): Promise<number> => {
    let requeued = 0
    try {
      // a full batch means more may be due: keep going, but stop as soon as close() was asked for
      for (;;) {
        const done = await store.retryDue(batchSize, actor, maxRounds)
        requeued += done.length
        if (done.length < batchSize || closing) break
      }
      if (requeued > 0) options.onRequeued?.(requeued)
    } catch (err) {
      onError(err as Error)
    }
    if (!closing && Date.now() - lastRetentionAt >= retentionIntervalMs) {
      await retention().catch((err: Error) => onError(err))
    }
    return requeued
  }

  const runOnce = (): Promise<number> => {
    if (closing) return Promise.resolve(0)
    running ??= round().finally(() => { running = undefined })
    return running
  }

  const timer = setInterval(() => { if (!running) void runOnce() }, intervalMs)
  timer.unref()
  void runOnce()

  return {
    runOnce,
    close() {
      closing ??= (async () => {
        clearInterval(timer)
        await running?.catch(() => {})
      })()
      return closing
    },
  }
}
