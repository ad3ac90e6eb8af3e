import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import { listenOn } from '../config/listen-address.js'
import { ConfigError } from '../core/errors.js'
import { createHealth, startHealthServer, type QueueHealth } from '../http/health.js'
import { createCommandMetrics } from '../observability/command-metrics.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { createMetrics } from '../observability/metrics.js'
import { createApp, type CommandApp } from '../commands/command-app.js'
import type { WorkerDefinition } from '../commands/command-worker.js'
import type { CliContext } from './context.js'
import { databaseCheck, redisCheck } from '../service/dependency-checks.js'
import { checkRedisDurability } from '../service/connect.js'

/** What a `--app` module's default export is: the workers, or a function that returns them. */
export type CommandAppModule = readonly WorkerDefinition<unknown>[] |
  ((context: { readonly redis: Redis }) => readonly WorkerDefinition<unknown>[] | Promise<readonly WorkerDefinition<unknown>[]>)

/** A running `hookstream run --role commands`. */
export interface CommandService {
  readonly app: CommandApp
  readonly healthUrl: string
  /** Stops the workers (running handlers get WORKER_SHUTDOWN_TIMEOUT), then health and metrics. Idempotent. */
  close(): Promise<void>
}

async function loadWorkers(appPath: string, redis: Redis): Promise<readonly WorkerDefinition<unknown>[]> {
  const expected = 'a module whose default export is an array of defineWorker() workers, or a function ({ redis }) => workers'
  let module: { default?: unknown }
  try {
    module = await import(pathToFileURL(resolve(appPath)).href) as { default?: unknown }
  } catch (err) {
    throw new ConfigError('--app', `names "${appPath}", which cannot be loaded (${(err as Error).message}); it must be ${expected}`)
  }
  const exported = module.default
  const workers = typeof exported === 'function' ? await (exported as (c: { redis: Redis }) => unknown)({ redis }) : exported
  if (!Array.isArray(workers) || workers.length === 0 || workers.some((w) => !w || !((w as WorkerDefinition).routes instanceof Map))) {
    throw new ConfigError('--app', `must name ${expected}; the default export of "${appPath}" is ${Array.isArray(workers) ? 'an array that is empty or holds something else' : typeof workers}`)
  }
  return workers as WorkerDefinition<unknown>[]
}

/**
 * Runs a user's command app as a service (`hookstream run --role commands --app ./my-app.js`): the module's workers
 * on the command log (COMMANDS_STREAM), the log trimmed group-aware (STREAM_TRIM_INTERVAL), health and metrics on
 * HEALTH_ENDPOINT (`webhook_command_*` per worker; the queue component is the command log and its groups).
 *
 * @example
 * const service = await startCommandService(ctx, { appPath: './my-app.js' })
 * process.once('SIGTERM', () => void service.close())
 */
export async function startCommandService(ctx: CliContext, options: { readonly appPath: string; readonly logger?: Logger }): Promise<CommandService> {
  const { config, db } = ctx
  if (!(ctx.redis instanceof Redis)) throw new ConfigError('--role commands', 'needs one Redis server (REDIS_URL); command logs are not partitioned over a Redis Cluster (unset REDIS_CLUSTER_NODES)')
  const redis = ctx.redis
  const logger = options.logger ?? createLogger({ level: config.logLevel })
  // the command log is a Redis stream like the webhook queue: the same check of what Redis can lose
  const durability = await checkRedisDurability(redis, config.redisRequireDurable, logger)
  const workers = await loadWorkers(options.appPath, redis)
  const metrics = createMetrics()
  const commandMetrics = createCommandMetrics(metrics.registry)
  const stream = config.commandStream
  const app = createApp({
    redis, stream, consumer: config.worker.consumerName, logger, drainTimeoutMs: config.worker.shutdownTimeoutMs,
    ...(config.worker.trimIntervalMs > 0 ? { trimIntervalMs: config.worker.trimIntervalMs, trimKeep: config.worker.trimKeep } : {}),
    onTrimmed: (removed) => metrics.streamTrimmed(removed), onCommandOutcome: commandMetrics.observe,
  })
  await app.register(...workers)
  await app.start()
  let shuttingDown = false
  const checkQueue = async (): Promise<QueueHealth> => {
    const [length, groups] = await Promise.all([redis.xlen(stream), redis.call('XINFO', 'GROUPS', stream) as Promise<unknown[][]>])
    const byName = new Map(groups.map((g) => {
      const rec: Record<string, unknown> = {}
      for (let i = 0; i + 1 < g.length; i += 2) rec[String(g[i])] = g[i + 1]
      return [String(rec.name), rec]
    }))
    const mine = workers.map((w) => byName.get(w.name))
    const oldest = await Promise.all(workers.map(async (w) => ((await redis.call('XPENDING', stream, w.name)) as [number, string | null])[1]))
    const oldestMs = Math.min(...oldest.filter((id): id is string => id !== null).map((id) => Number(id.split('-')[0])))
    return {
      depth: length, lag: Math.max(0, ...mine.map((g) => Number(g?.lag ?? 0))), pending: mine.reduce((n, g) => n + Number(g?.pending ?? 0), 0),
      oldestPendingAgeSeconds: Number.isFinite(oldestMs) ? (Date.now() - oldestMs) / 1000 : 0, groupExists: mine.every((g) => g !== undefined),
    }
  }
  const health = createHealth({
    metrics, checkDatabase: databaseCheck(db), checkRedis: redisCheck(redis, durability), checkQueue,
    worker: () => {
      const info = app.info()
      return { inFlight: info.reduce((n, w) => n + w.inFlight, 0), processed: info.reduce((n, w) => n + w.handled, 0), shuttingDown }
    },
  })
  const server = await listenOn('HEALTH_ENDPOINT', config.health.endpoint,
    () => startHealthServer(health, { port: config.health.endpoint.port, host: config.health.endpoint.host }))
  logger.info({ stream, workers: workers.map((w) => w.name), health: server.url }, 'hookstream command workers started')
  let closing: Promise<void> | undefined
  return {
    app, healthUrl: server.url,
    close: () => (closing ??= (async () => {
      shuttingDown = true
      await app.stop()
      health.close()
      await server.close()
      metrics.close()
      logger.info('hookstream command workers stopped')
    })()),
  }
}
