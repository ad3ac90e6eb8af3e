import type { Cluster, Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import type { Config } from '../config/load-config.js'
import type { Database } from '../db/database.js'
import { startRetention } from '../db/retention.js'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import { startDlqRetryWorker } from '../pipelines/dlq-retry.js'
import type { Queue } from './connect.js'
import { closeInOrder } from './shutdown.js'

/** Options of `startDlqRole`. */
export interface StartDlqRoleOptions {
  readonly config: Config
  readonly redis: Redis | Cluster
  readonly db: Kysely<Database>
  readonly queue: Queue
  readonly metrics: Metrics
  readonly logger: Logger
}

/** The running DLQ role (what `startDlqRole` returns). */
export interface DlqPart {
  /** Stops the DLQ retry worker, then retention; each waits for a round in progress; errors are ignored. */
  close(): Promise<void>
}

/**
 * Starts the DLQ role: the DLQ retry worker (re-queues due dead letters on the main stream, DLQ_RETRY_SCHEDULE,
 * DLQ_RETENTION) and the table upkeep (EVENT_RETENTION, AUDIT_RETENTION): the DLQ role is the one role every
 * deployment runs once or a few times.
 *
 * @example
 * const dlq = startDlqRole({ config, redis, db: ctx.db.db, queue, metrics, logger })
 * await dlq.close()
 */
export function startDlqRole(options: StartDlqRoleOptions): DlqPart {
  const { config, redis, db, queue, metrics, logger } = options
  const keys = config.keys
  const dlqWorker = startDlqRetryWorker({
    db, stream: queue.stream, dlqStream: { redis, dlqStream: keys.dlqStream, maxLen: config.dlq.maxLen },
    policy: config.dlq.policy, retentionMs: config.dlq.retentionMs,
    ...(config.streamMaxLen ? { streamMaxLen: config.streamMaxLen } : {}),
    onStatusChange: (change, count) => metrics.dlqRetry(change, count),
    onError: (err) => logger.warn({ err_message: err.message }, 'DLQ retry round failed'),
  })
  const retention = startRetention({
    db, ...config.retention,
    onPruned: (table, rows) => metrics.retentionPruned(table, rows),
    onError: (err) => logger.warn({ err_message: err.message }, 'retention prune failed'),
  })
  return { close: () => closeInOrder([() => dlqWorker.close(), () => retention.close()]) }
}
