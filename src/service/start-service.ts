import type { Cluster, Redis } from 'ioredis'
import type { Config } from '../config/load-config.js'
import type { Db } from '../db/database.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import type { Route } from '../http/server.js'
import { createLogger, type Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import { startAdmin } from './admin.js'
import { checkRedisDurability, openQueue } from './connect.js'
import { databaseDurabilityLosses } from '../db/database-durability.js'
import { startDlqRole } from './dlq.js'
import { createServiceState, reportQueueStats, startHealth } from './health.js'
import { startIngest } from './ingest.js'
import { shutdown } from './shutdown.js'
import { startTelemetry } from './telemetry.js'
import { openTools } from './tools.js'
import { startWorker } from './worker.js'

/** Which parts one process runs; `all` runs every part. */
export const ROLES = ['all', 'ingest', 'worker', 'dlq'] as const
/** One of `ROLES`: what `hookstream run --role` takes (besides `commands`, which runs a command app). */
export type Role = (typeof ROLES)[number]

/**
 * What the service runs on: the validated config, Redis and the migrated database, all owned by the caller
 * (`openContext` of the CLI gives them; `close()` of the service leaves them open).
 */
export interface ServiceContext {
  readonly config: Config
  /** A `Cluster` client when REDIS_CLUSTER_NODES is set, otherwise a `Redis` client. */
  readonly redis: Redis | Cluster
  readonly db: Db
}

/** Options of `startService`. */
export interface ServiceOptions {
  /** @defaultValue 'all' */
  readonly role?: Role
  /** Extra routes on the ingest server, next to the webhooks (the admin API has its own listener, ADMIN_ADDR). */
  readonly routes?: readonly Route[]
  /** Where logs go. @defaultValue stdout */
  readonly logger?: Logger
}

/** A running hookstream process. */
export interface Service {
  readonly ingestUrl?: string
  /** The admin API's listener (ADMIN_ADDR); unset when it does not run (no ADMIN_TOKEN, `ADMIN_ADDR=off`, or a role without ingest). */
  readonly adminUrl?: string
  readonly healthUrl: string
  readonly metrics: Metrics
  readonly logger: Logger
  readonly tools: ToolRegistry
  /** Graceful stop: no new requests or reads, in-flight events finish and are acked (up to the shutdown timeout). */
  close(): Promise<{ drained: boolean }>
}

/**
 * Starts the parts of hookstream the role asks for on an open context: ingest (HTTP_ADDR) with the admin API on
 * its own listener (ADMIN_ADDR, when ADMIN_TOKEN is set), the worker pipeline with its delayed-retry scheduler,
 * and health + metrics (HEALTH_ENDPOINT, always). The steps, in order: Redis and PostgreSQL durability checks, telemetry, the
 * queue (partitions, consumer group), tools, worker, DLQ role, ingest, admin, health; `close()` stops them in
 * the order `shutdown` documents.
 *
 * @example
 * const ctx = await openContext(flags, io)
 * const service = await startService(ctx, { role: 'all' })
 * process.once('SIGTERM', () => void service.close().then(() => ctx.close()))
 */
export async function startService(ctx: ServiceContext, options: ServiceOptions = {}): Promise<Service> {
  const { config, redis, db } = ctx
  const role = options.role ?? 'all'
  const runs = (part: Exclude<Role, 'all'>) => role === 'all' || role === part
  const logger = options.logger ?? createLogger({ level: config.logLevel })
  const durability = await checkRedisDurability(redis, config.redisRequireDurable, logger)
  const databaseLosses = await databaseDurabilityLosses(db)
  for (const { loss, fix } of databaseLosses) logger.warn({ database: 'durability' }, `${loss}; ${fix}`)
  const telemetry = startTelemetry(config, logger)
  const { metrics } = telemetry
  const queue = await openQueue(redis, config)
  const { tools, toolStore } = openTools({ config, db: db.db, logger, metrics })
  reportQueueStats({ config, db, queue, metrics })
  const state = createServiceState()

  const worker = runs('worker') ? startWorker({ config, redis, db: db.db, queue, tools, telemetry, state }) : undefined
  const dlq = runs('dlq') ? startDlqRole({ config, redis, db: db.db, queue, metrics, logger }) : undefined
  const ingest = runs('ingest') ? await startIngest({ config, redis, queue, tools, telemetry, ...(options.routes ? { routes: options.routes } : {}) }) : undefined
  // the admin API runs where it always did (roles all and ingest), on its own listener
  const admin = runs('ingest') ? await startAdmin({ config, redis, db: db.db, queue, tools, toolStore, logger, metrics }) : undefined
  const health = await startHealth({ config, redis, db, queue, tools, metrics, state, durability, databaseLosses, runsWorker: runs('worker') })
  logger.info({ role, ingest: ingest?.url, admin: admin?.url, health: health.server.url, consumer: config.worker.consumerName, stream: config.keys.stream,
    partitions: queue.partitions.count, ...(config.scale.clusterNodes ? { cluster: true } : {}) }, 'hookstream started')

  let closing: Promise<{ drained: boolean }> | undefined
  return {
    ...(ingest ? { ingestUrl: ingest.url } : {}),
    ...(admin ? { adminUrl: admin.url } : {}),
    healthUrl: health.server.url, metrics, logger, tools,
    close: () => (closing ??= shutdown({
      state, tools, health, telemetry,
      ...(ingest ? { ingest } : {}), ...(admin ? { admin } : {}), ...(worker ? { worker } : {}), ...(dlq ? { dlq } : {}),
    }, config.worker.shutdownTimeoutMs)),
  }
}
