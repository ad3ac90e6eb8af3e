import type { Cluster, Redis } from 'ioredis'
import type { Config } from '../config/load-config.js'
import { listenOn } from '../config/listen-address.js'
import type { Db } from '../db/database.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import { createHealth, startHealthServer, type Health, type HealthServer } from '../http/health.js'
import type { DbPoolStats, Metrics } from '../observability/metrics.js'
import { queueStatsProvider } from '../observability/queue-stats-provider.js'
import type { RedisDurability } from '../sources/redis-durability.js'
import type { DatabaseLoss } from '../db/database-durability.js'
import type { Queue } from './connect.js'
import { databaseCheck, redisCheck } from './dependency-checks.js'

/** What the worker's hooks feed and health reads; `shutdown` sets `shuttingDown`. */
export interface ServiceState {
  /** Set by `shutdown`; health then says not ready. */
  shuttingDown: boolean
  /** Events settled since the start. */
  processed: number
  /** Reads the pipeline's in-flight count (the worker adds the reader of each partition it reads once the pipeline runs). */
  inFlight: () => number
  /** Holds in progress (a dependency is down and the pipeline waits). */
  holds: number
  /** When poison entries were dead-lettered (ms since epoch); health counts the last 5 minutes. */
  poison: number[]
  /** When an event last settled (ms since epoch); the start time until one does. */
  lastSettledAt: number
}

/**
 * A new `ServiceState`: nothing processed, nothing in flight, not shutting down.
 *
 * @example
 * const state = createServiceState()
 */
export function createServiceState(): ServiceState {
  return { shuttingDown: false, processed: 0, inFlight: () => 0, holds: 0, poison: [], lastSettledAt: Date.now() }
}

/**
 * Feeds the queue gauges of `/metrics` (depth, lag, pending of every partition, the DLQ's open entries) and the
 * database pool gauges (`webhook_db_pool_*`, PostgreSQL only), read when scraped.
 *
 * @example
 * reportQueueStats({ config, db: ctx.db, queue, metrics })
 */
export function reportQueueStats(options: { readonly config: Config; readonly db: Db; readonly queue: Queue; readonly metrics: Metrics }): void {
  const { config, db, queue: { partitions, stream }, metrics } = options
  // PGlite has no pool: no webhook_db_pool_* gauges rather than zeros
  if (db.poolStats()) metrics.setDbPoolStats(() => db.poolStats() as DbPoolStats)
  metrics.setQueueStats(queueStatsProvider({
    // every partition: the base stream name holds nothing when STREAM_PARTITIONS > 1
    stream: partitions.count > 1 ? partitions.streams : stream, group: config.keys.group,
    dlqDepth: async () => Number((await db.db.selectFrom('webhook_dlq').where('status', 'in', ['pending', 'retrying'])
      .select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
  }))
}

/** Options of `startHealth`. */
export interface StartHealthOptions {
  readonly config: Config
  readonly redis: Redis | Cluster
  readonly db: Db
  readonly queue: Queue
  readonly tools: ToolRegistry
  readonly metrics: Metrics
  readonly state: ServiceState
  /** What Redis keeps on disk (the connect step's check); anything but `aof` makes Redis degraded. */
  readonly durability: RedisDurability
  /** What PostgreSQL can lose of what was acked (`databaseDurabilityLosses`): reasons on the database component. */
  readonly databaseLosses?: readonly DatabaseLoss[]
  /** Whether this process runs the worker: only then can it be stalled (WORKER_STALL_TIMEOUT). */
  readonly runsWorker: boolean
}

/** The health checks and their server (what `startHealth` returns); `shutdown` closes both. */
export interface ServiceHealth {
  readonly health: Health
  readonly server: HealthServer
}

/**
 * Starts health and metrics (HEALTH_ENDPOINT, every role): PostgreSQL, Redis (with its durability), the queue
 * (depth, lag, oldest pending entry, a stalled worker), the worker's counters and the unreadable stored tools.
 *
 * @example
 * const { server } = await startHealth({ config, redis, db: ctx.db, queue, tools, metrics, state, durability, runsWorker: true })
 * console.log(`${server.url}/health`)
 */
export async function startHealth(options: StartHealthOptions): Promise<ServiceHealth> {
  const { config, redis, db, queue: { partitions, stream, readKeys }, tools, metrics, state, durability, databaseLosses = [], runsWorker } = options
  const keys = config.keys
  const poisonRecent = () => {
    const cutoff = Date.now() - 300_000
    state.poison = state.poison.filter((t) => t > cutoff)
    return state.poison.length
  }
  // wedged: this consumer's oldest pending entry is older than the bound and nothing settled for as long
  const workerStall = async (): Promise<string | undefined> => {
    const bound = config.worker.stallTimeoutMs
    const idleMs = Date.now() - state.lastSettledAt
    if (idleMs < bound) return undefined
    let oldestMs = Infinity
    for (const partKeys of readKeys) {
      const [entry] = (await redis.call('XPENDING', partKeys.stream, keys.group, '-', '+', 1, config.worker.consumerName)) as [string, ...unknown[]][]
      if (entry) oldestMs = Math.min(oldestMs, Number(entry[0].split('-')[0]))
    }
    const ageMs = Date.now() - oldestMs
    if (!(ageMs > bound)) return undefined
    return `worker "${config.worker.consumerName}" is stalled: its oldest pending entry is ${Math.round(ageMs / 1000)} s old and it ` +
      `settled nothing for ${Math.round(idleMs / 1000)} s (WORKER_STALL_TIMEOUT ${Math.round(bound / 1000)} s); restart it`
  }
  const health = createHealth({
    metrics,
    checkDatabase: databaseCheck(db, () => state.holds > 0, databaseLosses.map((l) => l.loss)),
    checkRedis: redisCheck(redis, durability),
    checkQueue: async () => {
      const info = await stream.info()
      const group = info.groups.find((g) => g.name === keys.group)
      let oldestPendingAgeSeconds = 0
      if (group && group.pending > 0) {
        for (const partKeys of partitions.keys) {
          const summary = (await redis.call('XPENDING', partKeys.stream, keys.group)) as [number, string | null, ...unknown[]]
          const oldest = summary[1]
          if (oldest) oldestPendingAgeSeconds = Math.max(oldestPendingAgeSeconds, (Date.now() - Number(oldest.split('-')[0])) / 1000)
        }
      }
      const stalled = runsWorker && group ? await workerStall() : undefined
      // Redis cannot tell the lag after a trim or XDEL: the stream length is then its upper bound
      const lag = group ? group.lag ?? info.length : 0
      return { depth: info.length, lag, pending: group?.pending ?? 0, oldestPendingAgeSeconds, groupExists: group !== undefined, stalled }
    },
    worker: () => ({ inFlight: state.inFlight(), processed: state.processed, poisonRecent: poisonRecent(), shuttingDown: state.shuttingDown }),
    unreadableTools: () => tools.unreadable,
  })
  const server = await listenOn('HEALTH_ENDPOINT', config.health.endpoint, () => startHealthServer(health, {
    port: config.health.endpoint.port, host: config.health.endpoint.host,
  }))
  return { health, server }
}
