import type { Cluster, Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import type { Config } from '../config/load-config.js'
import { listenOn } from '../config/listen-address.js'
import type { Database } from '../db/database.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import type { ToolStore } from '../db/tool-store.js'
import { adminRoutes } from '../http/admin.js'
import { consoleRoutes } from '../http/console-routes.js'
import { deliveryReplaySender } from '../pipelines/replay.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../http/server.js'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import type { Queue } from './connect.js'

/** Options of `startAdmin`. */
export interface StartAdminOptions {
  readonly config: Config
  readonly redis: Redis | Cluster
  readonly db: Kysely<Database>
  readonly queue: Queue
  readonly tools: ToolRegistry
  readonly toolStore: ToolStore
  readonly logger: Logger
  /** Counts the DLQ status changes the admin API makes (`webhook_dlq_retries_total`). @defaultValue not counted */
  readonly metrics?: Pick<Metrics, 'dlqRetry'>
}

// the admin listener's own budget: a few operators and scripts, each request small (bodies up to 1 MiB); one client
// address gets a quarter of it, so a client holding connections open (no token needed for that) leaves room for others
const ADMIN_LISTENER_LIMITS = { maxConnections: 64, maxConnectionsPerClient: 16, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 } as const

/**
 * Starts the admin API and the web console (`/console`) on their own listener (ADMIN_ADDR), so webhook senders can
 * neither reach them nor use up their connections; resolves undefined, starting nothing, without ADMIN_TOKEN or with `ADMIN_ADDR=off`.
 *
 * @example
 * const admin = await startAdmin({ config, redis, db: ctx.db.db, queue, tools, toolStore, logger })
 * if (admin) console.log(`${admin.url}/admin`)
 */
export async function startAdmin(options: StartAdminOptions): Promise<RunningHttpServer | undefined> {
  const { config, redis, db, queue: { partitions, stream }, tools, toolStore, logger, metrics } = options
  if (!config.adminToken || !config.admin.addr) return undefined
  const addr = config.admin.addr
  return listenOn('ADMIN_ADDR', addr, () => startHttpServer(addr, createRouter([...adminRoutes({
    db, redis, keys: config.keys, tools, toolStore, staticTools: config.tools, stream, logger, token: config.adminToken,
    loginThrottle: { maxFailures: config.admin.loginMaxFailures, windowMs: config.admin.loginWindowMs },
    ...(partitions.count > 1 ? { partitionKeys: partitions.keys } : {}),
    ...(config.streamMaxLen ? { streamMaxLen: config.streamMaxLen } : {}),
    ...(metrics ? { onDlqStatusChange: (change, count) => metrics.dlqRetry(change, count) } : {}),
    commandLog: { redis, stream: config.commandStream },
    replay: {
      send: deliveryReplaySender({ redis, tools, keysOf: (event) => partitions.route(event).keys }),
      limits: { maxEvents: config.admin.replayMaxEvents, confirmOver: config.admin.replayConfirmOver },
    },
  }), ...consoleRoutes()]), ADMIN_LISTENER_LIMITS))
}
