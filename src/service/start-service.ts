import type { Subscription } from 'rxjs'
import type { Config } from '../config/load-config.js'
import { startRetention } from '../db/retention.js'
import { ToolRegistry } from '../db/tool-registry.js'
import { ToolStore } from '../db/tool-store.js'
import { adminRoutes } from '../http/admin.js'
import { createHealth, startHealthServer, type HealthServer } from '../http/health.js'
import { InflightBudget } from '../http/inflight-budget.js'
import { createIngestHandler } from '../http/ingest.js'
import { createRouter, startHttpServer, type Route, type RunningHttpServer } from '../http/server.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { createMetrics, type Metrics } from '../observability/metrics.js'
import { queueStatsProvider } from '../observability/queue-stats-provider.js'
import { startTracing } from '../observability/start-tracing.js'
import { startDlqRetryWorker } from '../pipelines/dlq-retry.js'
import { webhookPipeline } from '../pipelines/webhook.js'
import { ForwardSink } from '../sinks/forward.js'
import { startDelayedRetries } from '../sources/delayed-retries.js'
import { PartitionedStreamClient, StreamPartitions } from '../sources/partitions.js'
import { StreamClient } from '../sources/stream-client.js'
import { readRedisDurability, type RedisDurability } from '../sources/redis-durability.js'
import { ConfigError } from '../core/errors.js'
import { startStreamTrimmer } from '../sources/stream-trimmer.js'
import type { CliContext } from '../cli/context.js'
import { databaseCheck, redisCheck } from '../cli/dependency-checks.js'

/** Which parts one process runs; `all` runs every part. */
export const ROLES = ['all', 'ingest', 'worker', 'dlq'] as const
export type Role = (typeof ROLES)[number]

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

// the admin listener's own budget: a few operators and scripts, each request small (bodies up to 1 MiB)
const ADMIN_LISTENER_LIMITS = { maxConnections: 64, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 } as const

const DURABILITY_LOSS: Record<Exclude<RedisDurability['mode'], 'aof'>, string> = {
  none: 'Redis keeps nothing on disk (appendonly no, no save): a Redis restart loses every accepted event still queued, every parked retry and every idempotency marker',
  rdb: 'Redis keeps only snapshots (save, appendonly no): a Redis restart loses everything accepted since the last snapshot',
  unknown: 'Redis refused CONFIG GET, so its persistence is unknown: make sure it keeps an append-only file (appendonly yes)',
}

// what "no 202 is lost" needs: Redis must keep an accepted event across its own restart
async function checkRedisDurability(redis: CliContext['redis'], required: boolean, logger: Logger): Promise<RedisDurability> {
  const durability = await readRedisDurability(redis)
  if (durability.mode === 'aof') return durability
  if (required) {
    throw new ConfigError('REDIS_REQUIRE_DURABLE', `is true, but ${DURABILITY_LOSS[durability.mode]}; ` +
      'turn on appendonly (CONFIG SET appendonly yes, and in redis.conf) or unset REDIS_REQUIRE_DURABLE')
  }
  logger.warn({ durability: durability.mode }, `${DURABILITY_LOSS[durability.mode]}; set appendonly yes (or REDIS_REQUIRE_DURABLE=true to refuse to start)`)
  return durability
}

/**
 * Starts the parts of hookstream the role asks for on an open context: ingest (HTTP_ADDR) with the admin API on
 * its own listener (ADMIN_ADDR, when ADMIN_TOKEN is set), the worker pipeline with its delayed-retry scheduler,
 * and health + metrics (HEALTH_ENDPOINT, always).
 *
 * @example
 * const ctx = await openContext(flags, io)
 * const service = await startService(ctx, { role: 'all' })
 * process.once('SIGTERM', () => void service.close().then(() => ctx.close()))
 */
export async function startService(ctx: CliContext, options: ServiceOptions = {}): Promise<Service> {
  const { config, redis, db } = ctx
  const role = options.role ?? 'all'
  const runs = (part: Exclude<Role, 'all'>) => role === 'all' || role === part
  const logger = options.logger ?? createLogger({ level: config.logLevel })
  const durability = await checkRedisDurability(redis, config.redisRequireDurable, logger)
  const metrics = createMetrics({ maxEventTypesPerTool: config.metrics.maxEventTypesPerTool, maxEventTypes: config.metrics.maxEventTypes })
  // without an endpoint nothing is registered and the pipeline does no span work at all
  const tracing = startTracing({ ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}) })
  const telemetry = { metrics, logger, tracing: tracing.enabled }
  const keys = config.keys
  // STREAM_PARTITIONS > 1: ingest routes each event to its partition; everything else sees all partitions as one
  const partitions = new StreamPartitions({ redis, keys, count: config.scale.partitions, key: config.scale.partitionKey })
  const stream = partitions.count > 1 ? new PartitionedStreamClient(partitions) : new StreamClient({ redis, stream: keys.stream })
  const readKeys = (config.scale.workerPartitions ?? partitions.keys.map((_, i) => i)).map((i) => partitions.keys[i] ?? keys)
  const orderFields = config.scale.orderBy
  const toolStore = new ToolStore({ db: db.db, ...(config.encryptionKey ? { encryptionKey: config.encryptionKey } : {}),
    ...(config.encryptionKeyPrevious ? { encryptionKeyPrevious: config.encryptionKeyPrevious } : {}) })
  const tools = new ToolRegistry({
    tools: config.tools, store: toolStore,
    onError: (err) => logger.warn({ err }, 'tool refresh failed; serving the last known tools'),
    onUnreadable: (toolId, err) => logger.error({ err, toolId }, 'a stored tool cannot be loaded; its webhooks answer 503 until the row is fixed'),
  })
  metrics.setToolLoadErrors(() => tools.unreadable.keys())
  await stream.ensureGroup(keys.group)
  metrics.setQueueStats(queueStatsProvider({
    // every partition: the base stream name holds nothing when STREAM_PARTITIONS > 1
    stream: partitions.count > 1 ? partitions.streams : stream, group: keys.group,
    dlqDepth: async () => Number((await db.db.selectFrom('webhook_dlq').where('status', 'in', ['pending', 'retrying'])
      .select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n),
  }))

  const state = { shuttingDown: false, processed: 0, inFlight: () => 0, holds: 0, poison: [] as number[], lastSettledAt: Date.now() }
  const cleanups: (() => Promise<unknown> | void)[] = []
  let pipelineSub: Subscription | undefined
  const abort = new AbortController()
  let pipelineClosed: Promise<{ drained: boolean }> = Promise.resolve({ drained: true })

  if (runs('worker')) {
    const forwardSink = new ForwardSink({ timeoutMs: config.forward.timeoutMs, allowPrivate: config.forward.allowPrivate })
    let markClosed: (r: { drained: boolean }) => void = () => {}
    pipelineClosed = new Promise((resolve) => { markClosed = resolve })
    // one source per partition read: closed once all are, drained only if each one is
    let openSources = readKeys.length
    let allDrained = true
    const sourceClosed = (r: { drained: boolean }) => {
      allDrained &&= r.drained
      if (--openSources === 0) markClosed({ drained: allDrained })
    }
    pipelineSub = webhookPipeline({
      redis, db: db.db, tools, forwardSink, keys, consumer: config.worker.consumerName,
      ...(partitions.count > 1 ? { partitions: readKeys } : {}),
      ...(orderFields ? { orderBy: (env) => orderFields.map((f) => env.message.event[f]).join('\u0000') } : {}),
      batchSize: config.worker.batchSize, maxInFlight: config.worker.maxInFlight, blockMs: config.worker.blockTimeoutMs,
      claimIdleMs: config.worker.claimIdleMs, maxDeliveries: config.worker.maxDeliveries,
      idempotencyTtlSeconds: Math.max(1, Math.round(config.worker.idempotencyTtlMs / 1000)),
      // every in-flight message may wait in the forward step; the per-destination bulkhead bounds the requests
      forwardConcurrency: Math.max(config.worker.concurrency, config.worker.maxInFlight), drainTimeoutMs: config.worker.shutdownTimeoutMs,
      maxRetryAfterMs: config.forward.maxRetryAfterMs,
      signal: abort.signal, telemetry,
      processingTimeoutMs: config.processingTimeoutMs, dlqPolicy: config.dlq.policy, dlqMaxLen: config.dlq.maxLen,
      onSettled: () => { state.processed += 1; state.lastSettledAt = Date.now() },
      // telemetry logs dead letters, holds and source errors; these hooks only feed health
      onDeadLettered: (_env, failure) => { if (failure.code === 'POISON') state.poison.push(Date.now()) },
      onHold: (held) => { state.holds += held ? 1 : -1 },
      exposeInFlight: (read) => { state.inFlight = read },
      onClosed: sourceClosed,
    }).subscribe({
      error: (err) => { logger.error({ err }, 'the pipeline broke down; exiting so the orchestrator restarts it'); process.exitCode = 1; markClosed({ drained: false }) },
    })
    // each partition parks its retries in its own set (same hash tag), so each gets its scheduler
    for (const partKeys of readKeys) {
      const delayed = startDelayedRetries({ redis, keys: partKeys, onError: (err) => logger.warn({ err_message: err.message }, 'delayed-retry scheduler error') })
      cleanups.push(() => delayed.close())
    }
    cleanups.push(() => forwardSink.close())
    if (config.worker.trimIntervalMs > 0) {
      // only the partitions this worker reads (the workers of a group together cover them all), each under its own
      // lease, so one of the workers reading a partition trims it; STREAM_TRIM_KEEP is split over the partitions
      // as PartitionedStreamClient.trimSafe splits it
      for (const partKeys of readKeys) {
        const trimmer = startStreamTrimmer({
          stream: new StreamClient({ redis, stream: partKeys.stream }),
          intervalMs: config.worker.trimIntervalMs, keep: Math.ceil(config.worker.trimKeep / partitions.count), logger,
          onTrimmed: (removed) => metrics.streamTrimmed(removed),
        })
        cleanups.push(() => trimmer.close())
      }
    }
  }

  if (runs('dlq')) {
    const dlqWorker = startDlqRetryWorker({
      db: db.db, stream, dlqStream: { redis, dlqStream: keys.dlqStream, maxLen: config.dlq.maxLen },
      policy: config.dlq.policy, retentionMs: config.dlq.retentionMs,
      ...(config.streamMaxLen ? { streamMaxLen: config.streamMaxLen } : {}),
      onRequeued: (n) => { for (let i = 0; i < n; i++) metrics.dlqRetry('requeued') },
      onError: (err) => logger.warn({ err_message: err.message }, 'DLQ retry round failed'),
    })
    cleanups.push(() => dlqWorker.close())
    // the DLQ role does the table upkeep: it is the one role every deployment runs once or a few times
    const retention = startRetention({
      db: db.db, ...config.retention,
      onPruned: (table, rows) => metrics.retentionPruned(table, rows),
      onError: (err) => logger.warn({ err_message: err.message }, 'retention prune failed'),
    })
    cleanups.push(() => retention.close())
  }

  let ingest: RunningHttpServer | undefined
  if (runs('ingest')) {
    const inflightBudget = new InflightBudget(config.http.maxInflightBytes)
    metrics.setInflightBytes(() => inflightBudget.usedBytes)
    const handler = createIngestHandler({ inflightBudget,
      tools, stream, redis, keys, maxBodyBytes: config.http.maxBodyBytes, maxJsonDepth: config.http.maxJsonDepth, metrics, logger, tracing: tracing.enabled,
      // one dedupe window: a provider's re-send is answered duplicate for as long as the worker remembers the event
      deliverySeenTtlSeconds: Math.max(1, Math.round(config.worker.idempotencyTtlMs / 1000)),
      ...(partitions.count > 1 ? { partitions } : {}),
      ...(config.http.rateLimit ? { rateLimit: config.http.rateLimit } : {}),
      ...(config.streamMaxLen ? { maxLen: config.streamMaxLen } : {}),
      ...(config.http.scrubHeaders ? { scrubHeaders: config.http.scrubHeaders } : {}),
    })
    ingest = await startHttpServer(config.http.addr, createRouter([
      { method: 'POST', path: '/webhooks/:toolId', handler },
      ...(options.routes ?? []),
    ]), {
      maxConnections: config.http.maxConnections,
      maxConnectionsPerClient: config.http.maxConnectionsPerClient,
      onConnectionClosed: (reason) => metrics.connectionClosed(reason),
      headersTimeoutMs: config.http.headersTimeoutMs,
      requestTimeoutMs: config.http.requestTimeoutMs,
    })
  }

  // the admin API runs where it always did (roles all and ingest), on its own listener: webhook senders can
  // neither reach it nor use up its connections
  let admin: RunningHttpServer | undefined
  if (runs('ingest') && config.adminToken && config.admin.addr) {
    admin = await startHttpServer(config.admin.addr, createRouter(adminRoutes({
      db: db.db, redis, keys, tools, toolStore, staticTools: config.tools, stream, logger, token: config.adminToken,
      loginThrottle: { maxFailures: config.admin.loginMaxFailures, windowMs: config.admin.loginWindowMs },
      ...(partitions.count > 1 ? { partitionKeys: partitions.keys } : {}),
      ...(config.streamMaxLen ? { streamMaxLen: config.streamMaxLen } : {}),
      commandLog: { redis, stream: config.commandStream },
    })), ADMIN_LISTENER_LIMITS)
  }

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
    checkDatabase: databaseCheck(db, () => state.holds > 0),
    checkRedis: redisCheck(redis, { mode: durability.mode, ...(durability.mode === 'aof' ? {} : { loss: DURABILITY_LOSS[durability.mode] }) }),
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
      const stalled = runs('worker') && group ? await workerStall() : undefined
      return { depth: info.length, lag: group?.lag ?? 0, pending: group?.pending ?? 0, oldestPendingAgeSeconds, groupExists: group !== undefined, stalled }
    },
    worker: () => ({ inFlight: state.inFlight(), processed: state.processed, poisonRecent: poisonRecent(), shuttingDown: state.shuttingDown }),
    unreadableTools: () => tools.unreadable,
  })
  const healthServer: HealthServer = await startHealthServer(health, {
    port: config.health.endpoint.port, host: config.health.endpoint.host,
  })
  logger.info({ role, ingest: ingest?.url, admin: admin?.url, health: healthServer.url, consumer: config.worker.consumerName, stream: keys.stream,
    partitions: partitions.count, ...(config.scale.clusterNodes ? { cluster: true } : {}) }, 'hookstream started')

  let closing: Promise<{ drained: boolean }> | undefined
  return {
    ...(ingest ? { ingestUrl: ingest.url } : {}),
    ...(admin ? { adminUrl: admin.url } : {}),
    healthUrl: healthServer.url, metrics, logger, tools,
    close: () => (closing ??= (async () => {
      state.shuttingDown = true
      // stop taking webhooks first, then stop reading; what is in flight finishes and is acked
      await Promise.all([ingest?.close(), admin?.close()])
      abort.abort()
      const timeout = new Promise<{ drained: boolean }>((resolve) =>
        setTimeout(() => resolve({ drained: false }), config.worker.shutdownTimeoutMs + 1000).unref())
      const result = await Promise.race([pipelineClosed, timeout])
      pipelineSub?.unsubscribe()
      for (const cleanup of cleanups) await Promise.resolve().then(cleanup).catch(() => {})
      await tools.close()
      health.close()
      await healthServer.close()
      metrics.close()
      await tracing.shutdown().catch(() => {})
      logger.info({ drained: result.drained }, 'hookstream stopped')
      return result
    })()),
  }
}
