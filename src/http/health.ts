import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ConfigError, PipelineError } from '../core/errors.js'
import { guardConnections } from './connection-guard.js'
import { listenerUrl } from './server.js'
import { startEventLoopWatchdog } from '../observability/event-loop-watchdog.js'
import { maskUrlCredentials } from '../observability/logger.js'
import type { HealthComponent, HealthStatus, Metrics } from '../observability/metrics.js'

/** What `checkQueue` returns. */
export interface QueueHealth {
  /** Entries in the stream (XLEN), acked ones the trim has not removed yet included. */
  readonly depth: number
  /** Entries not yet delivered to the group (its lag). With `pending`, what `maxQueueDepth` is compared with. */
  readonly lag: number
  /** Entries delivered to the group and not yet acked. */
  readonly pending: number
  readonly oldestPendingAgeSeconds: number
  readonly groupExists: boolean
  /**
   * Set when this process's worker is wedged: why (its oldest pending entry is older than the stall bound while
   * it settled nothing for as long). The queue is then unhealthy and the process not ready.
   */
  readonly stalled?: string
}

/** What `worker` returns, synchronously. */
export interface WorkerState {
  readonly inFlight: number
  readonly processed: number
  /** Poison entries dead-lettered in the last 5 minutes. */
  readonly poisonRecent?: number
  readonly shuttingDown: boolean
}

/** Options of `createHealth`: the check functions the service wires, and thresholds. */
export interface HealthOptions {
  /** Pings PostgreSQL; resolves with details to show (e.g. `{ openConnections }`), rejects when unreachable. */
  readonly checkDatabase: () => Promise<Record<string, unknown>>
  /**
   * Pings Redis; resolves with details to show, rejects when unreachable. Details with non-empty `reasons`
   * (e.g. Redis keeps nothing on disk) make the component degraded.
   */
  readonly checkRedis: () => Promise<Record<string, unknown>>
  /** Reads the stream and consumer group. */
  readonly checkQueue: () => Promise<QueueHealth>
  /** The worker's counters. */
  readonly worker: () => WorkerState
  /** Serves `GET /metrics` and records `webhook_health_checks_total` when given. */
  readonly metrics?: Metrics
  /** A check slower than this fails (a hung dependency must not hang the probe). @defaultValue 2000 */
  readonly timeoutMs?: number
  /** Entries waiting (the group's lag plus its pending entries) above which health is degraded. @defaultValue 1000 */
  readonly maxQueueDepth?: number
  /** Oldest pending entry age above which health is degraded. @defaultValue 300 */
  readonly maxOldestPendingAgeSeconds?: number
  /** Event-loop lag above which `/health/live` fails. @defaultValue 5000 */
  readonly eventLoopStallMs?: number
  /**
   * Stored tools that cannot be loaded, by id, with the reason (the ToolRegistry's `unreadable`). With it, the
   * reports have a component `tools`, degraded while any is listed; the other tools keep working, so the
   * process stays ready. @defaultValue no `tools` component
   */
  readonly unreadableTools?: () => ReadonlyMap<string, Error>
}

/** One component in the report: its status, how long the check took, its details, and the error if it failed. */
export type ComponentHealth = { status: HealthStatus; durationMs: number; error?: string; reasons?: string[] } & Record<string, unknown>

/** The body of `GET /health`. */
export interface HealthReport {
  readonly status: HealthStatus
  readonly timestamp: string
  readonly components: Record<Exclude<HealthComponent, 'tools'>, ComponentHealth> & { tools?: ComponentHealth }
}

/** The body of `GET /health/ready`: `components` shows what is degraded without making the process unready. */
export interface ReadinessReport {
  readonly ready: boolean
  readonly reasons: string[]
  readonly components?: { readonly tools?: ComponentHealth }
}

/** The body of `GET /health/live`. */
export interface LivenessReport { readonly live: boolean; readonly eventLoopLagMs: number }

/** Health checks and their HTTP handler. */
export interface Health {
  report(): Promise<HealthReport>
  readiness(): Promise<ReadinessReport>
  liveness(): LivenessReport
  /**
   * Answers `GET|HEAD /health`, `/health/live`, `/health/ready` and `/metrics`; returns false (and leaves `res`
   * alone) for any other path, so you can mount it in front of another handler.
   */
  healthHandler(req: IncomingMessage, res: ServerResponse): boolean
  /** Stops the event-loop watchdog. Idempotent. */
  close(): void
}

const PATHS = new Set(['/health', '/health/live', '/health/ready', '/metrics'])

function positive(name: string, value: number, integer = false): number {
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`createHealth: "${name}" must be a positive ${integer ? 'integer' : 'number'}; got ${value}`)
  }
  return value
}

// the one error body of every hookstream HTTP answer
function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } })
}

function describe(err: unknown): { error: string; code?: string } {
  const message = maskUrlCredentials(err instanceof Error ? err.message : String(err)).slice(0, 300)
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? { error: message || code, code } : { error: message || 'failed' }
}

/**
 * The worker component's `details` (the seed's shape): `runtime` with memory (bytes) and event-loop figures (lag,
 * and the share of time the loop was busy since the previous report), so
 * an operator sees memory growth and a busy loop from `/health` alone.
 */
function runtimeDetails(mem: NodeJS.MemoryUsage, lagMs: number, loop: { utilization: number }): Record<string, unknown> {
  return {
    runtime: {
      memory: { rss_bytes: mem.rss, heap_used_bytes: mem.heapUsed, heap_total_bytes: mem.heapTotal, external_bytes: mem.external },
      event_loop: { lag_ms: lagMs, utilization: Math.round(loop.utilization * 1000) / 1000 },
      node_version: process.version,
      active_resources: process.getActiveResourcesInfo().length,
    },
  }
}

/**
 * Builds the health checks: `/health` (every component, 503 when unhealthy), `/health/live` (503 only when the
 * event loop is stalled), `/health/ready` (503 unless PostgreSQL and Redis answer, the consumer group exists and
 * the worker is not shutting down) and `/metrics`.
 *
 * @example
 * const health = createHealth({ checkDatabase, checkRedis, checkQueue, worker: () => worker.state(), metrics })
 * const server = await startHealthServer(health, { port: 8088 })
 */
export function createHealth(options: HealthOptions): Health {
  for (const name of ['checkDatabase', 'checkRedis', 'checkQueue', 'worker'] as const) {
    if (typeof options[name] !== 'function') {
      throw new TypeError(`createHealth: "${name}" must be a function; got ${typeof options[name]}`)
    }
  }
  const timeoutMs = positive('timeoutMs', options.timeoutMs ?? 2000)
  const maxDepth = positive('maxQueueDepth', options.maxQueueDepth ?? 1000)
  const maxAge = positive('maxOldestPendingAgeSeconds', options.maxOldestPendingAgeSeconds ?? 300)
  const watchdog = startEventLoopWatchdog({ stallMs: positive('eventLoopStallMs', options.eventLoopStallMs ?? 5000) })
  const { metrics } = options
  const startedAt = Date.now()
  // event-loop utilization since the previous report (since start for the first), not a lifetime average
  let lastElu = performance.eventLoopUtilization()
  const sinceLastReport = () => {
    const now = performance.eventLoopUtilization()
    const delta = performance.eventLoopUtilization(now, lastElu)
    lastElu = now
    return delta
  }

  // one call per dependency at a time: parallel probes share it, so a hung dependency cannot pile up calls
  const inFlight = new Map<string, Promise<unknown>>()
  const timed = <T>(component: HealthComponent, fn: () => Promise<T>): Promise<{ value?: T; failure?: unknown; durationMs: number }> => {
    let call = inFlight.get(component) as Promise<T> | undefined
    if (!call) {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new PipelineError('infrastructure', 'HEALTH_CHECK_TIMEOUT',
          `health check "${component}" did not answer within ${timeoutMs} ms; check that ${component} is reachable ` +
          'or raise the health check timeout')), timeoutMs)
      })
      call = Promise.race([Promise.resolve().then(fn), timeout]).finally(() => {
        clearTimeout(timer)
        inFlight.delete(component)
      })
      inFlight.set(component, call)
    }
    const started = performance.now()
    return call.then(
      (value) => ({ value, durationMs: performance.now() - started }),
      (failure: unknown) => ({ failure, durationMs: performance.now() - started }),
    )
  }
  const record = (component: HealthComponent, health: ComponentHealth): ComponentHealth => {
    metrics?.healthCheck(component, health.status, health.durationMs / 1000)
    return { ...health, durationMs: Math.round(health.durationMs * 10) / 10 }
  }

  const dependency = async (component: 'database' | 'redis', fn: () => Promise<Record<string, unknown>>) => {
    const r = await timed(component, fn)
    const degraded = Array.isArray(r.value?.reasons) && r.value.reasons.length > 0
    return record(component, r.failure === undefined
      ? { ...r.value, status: degraded ? 'degraded' : 'healthy', durationMs: r.durationMs }
      : { status: 'unhealthy', durationMs: r.durationMs, ...describe(r.failure) })
  }
  const queue = async (): Promise<ComponentHealth> => {
    const r = await timed('queue', options.checkQueue)
    if (r.failure !== undefined || !r.value) {
      return record('queue', { status: 'unhealthy', durationMs: r.durationMs, ...describe(r.failure) })
    }
    const q = r.value
    const reasons: string[] = []
    let status: HealthStatus = 'healthy'
    if (!q.groupExists) {
      status = 'unhealthy'
      reasons.push('the consumer group does not exist (the worker recreates it; check Redis persistence if it recurs)')
    }
    if (q.stalled) {
      status = 'unhealthy'
      reasons.push(q.stalled)
    }
    // what waits, not XLEN: acked entries stay in the stream until the next trim (or for good with STREAM_TRIM_KEEP)
    const waiting = q.lag + q.pending
    if (waiting > maxDepth) reasons.push(`${waiting} entries wait in the queue (consumer lag ${q.lag} + pending ${q.pending}), above ${maxDepth}`)
    if (q.oldestPendingAgeSeconds > maxAge) reasons.push(`oldest pending entry is ${Math.round(q.oldestPendingAgeSeconds)} s old, above ${maxAge} s`)
    if (status === 'healthy' && reasons.length > 0) status = 'degraded'
    const details = { queue_depth: q.depth, consumer_lag: q.lag, pending: q.pending, oldest_pending_age_seconds: q.oldestPendingAgeSeconds }
    return record('queue', { ...q, details, status, durationMs: r.durationMs, ...(reasons.length ? { reasons } : {}) })
  }
  const worker = (): ComponentHealth => {
    const started = performance.now()
    const loop = watchdog.state()
    const mem = process.memoryUsage()
    const base = {
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, externalBytes: mem.external },
      eventLoopLagMs: loop.lagMs,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      details: runtimeDetails(mem, loop.lagMs, sinceLastReport()),
    }
    let state: WorkerState
    try {
      state = options.worker()
    } catch (err) {
      return record('worker', { ...base, status: 'unhealthy', durationMs: performance.now() - started, ...describe(err) })
    }
    const reasons: string[] = []
    if (state.shuttingDown) reasons.push('shutting down')
    if ((state.poisonRecent ?? 0) > 0) reasons.push(`${state.poisonRecent} poison entries dead-lettered in the last 5 minutes`)
    if (loop.stalled) reasons.push(`event loop stalled (lag ${loop.lagMs} ms)`)
    const status: HealthStatus = loop.stalled ? 'unhealthy' : reasons.length ? 'degraded' : 'healthy'
    return record('worker', {
      ...base, inFlight: state.inFlight, processed: state.processed, poisonRecent: state.poisonRecent ?? 0,
      shuttingDown: state.shuttingDown, status, durationMs: performance.now() - started, ...(reasons.length ? { reasons } : {}),
    })
  }

  const tools = (): ComponentHealth | undefined => {
    if (!options.unreadableTools) return undefined
    const started = performance.now()
    const unreadable = [...options.unreadableTools()]
    const reasons = unreadable.slice(0, 20).map(([id, err]) => `tool "${id}" cannot be loaded: ${describe(err).error}`)
    return record('tools', { status: unreadable.length ? 'degraded' : 'healthy', durationMs: performance.now() - started,
      unreadable: unreadable.map(([id]) => id), ...(reasons.length ? { reasons } : {}) })
  }

  const report = async (): Promise<HealthReport> => {
    const [database, redis, q] = await Promise.all([
      dependency('database', options.checkDatabase), dependency('redis', options.checkRedis), queue()])
    const toolsHealth = tools()
    const components = { database, redis, queue: q, worker: worker(), ...(toolsHealth ? { tools: toolsHealth } : {}) }
    const statuses = Object.values(components).map((c) => c.status)
    const status: HealthStatus = statuses.includes('unhealthy') ? 'unhealthy' : statuses.includes('degraded') ? 'degraded' : 'healthy'
    return { status, timestamp: new Date().toISOString(), components }
  }
  const readiness = async (): Promise<ReadinessReport> => {
    const [database, redis, q] = await Promise.all([
      dependency('database', options.checkDatabase), dependency('redis', options.checkRedis), queue()])
    const reasons: string[] = []
    if (database.status === 'unhealthy') reasons.push(`database: ${database.error}`)
    if (redis.status === 'unhealthy') reasons.push(`redis: ${redis.error}`)
    if (q.status === 'unhealthy') reasons.push(`queue: ${q.error ?? q.reasons?.join('; ')}`)
    let shuttingDown = true
    try { shuttingDown = options.worker().shuttingDown } catch (err) { reasons.push(`worker: ${describe(err).error}`) }
    if (shuttingDown) reasons.push('worker: shutting down')
    const toolsHealth = tools()
    return { ready: reasons.length === 0, reasons, ...(toolsHealth ? { components: { tools: toolsHealth } } : {}) }
  }
  const liveness = (): LivenessReport => {
    const loop = watchdog.state()
    return { live: !loop.stalled, eventLoopLagMs: loop.lagMs }
  }

  const send = (req: IncomingMessage, res: ServerResponse, code: number, body: string, type = 'application/json') => {
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
  const answer = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (path === '/health') {
      const r = await report()
      return send(req, res, r.status === 'unhealthy' ? 503 : 200, JSON.stringify(r))
    }
    if (path === '/health/live') {
      const l = liveness()
      return send(req, res, l.live ? 200 : 503, JSON.stringify(l))
    }
    if (path === '/health/ready') {
      const r = await readiness()
      return send(req, res, r.ready ? 200 : 503, JSON.stringify(r))
    }
    if (!metrics) return send(req, res, 404, errorBody('NOT_FOUND', 'metrics are not enabled on this server'))
    return send(req, res, 200, await metrics.metricsText(), metrics.contentType)
  }

  let closed = false
  return {
    report,
    readiness,
    liveness,
    healthHandler(req, res) {
      const path = (req.url ?? '/').split('?', 1)[0] as string
      if (!PATHS.has(path)) return false
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD')
        send(req, res, 405, errorBody('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}; use GET`))
        return true
      }
      answer(req, res, path).catch((err: unknown) => {
        if (!res.headersSent) send(req, res, 500, errorBody('INTERNAL_ERROR', `the health check failed unexpectedly: ${describe(err).error}`))
        else res.destroy()
      })
      return true
    },
    close() {
      if (closed) return
      closed = true
      watchdog.close()
    },
  }
}

/** A listening health server. */
export interface HealthServer {
  readonly url: string
  readonly port: number
  /** Stops listening and closes open connections. Idempotent. */
  close(): Promise<void>
}

/** Options of `startHealthServer`. */
export interface HealthServerOptions {
  readonly port: number
  /** @defaultValue all interfaces */
  readonly host?: string
  /** Open connections at most; more are closed at once (probes and scrapes need few). @defaultValue 64 */
  readonly maxConnections?: number
  /**
   * Open connections per client address at most, so that one client (or one noisy neighbour) cannot take
   * every slot the orchestrator's probes need. @defaultValue 8
   */
  readonly maxConnectionsPerClient?: number
  /** Time a client has to send its request headers before the connection is closed. @defaultValue 5000 */
  readonly headersTimeoutMs?: number
}

/**
 * Serves `health` on its own port (HEALTH_ENDPOINT, default :8088); other paths get 404. Like ingest it caps
 * connections (in total and per client address) and closes clients that are slow to send their headers, so a
 * stuck scraper, a slow client or a busy ingest port cannot hold the port that the orchestrator's probes need.
 *
 * @example
 * const server = await startHealthServer(health, { port: 8088 }) // host defaults to all interfaces
 */
export async function startHealthServer(health: Health, options: HealthServerOptions): Promise<HealthServer> {
  const { port, host } = options
  const maxConnections = options.maxConnections ?? 64
  const headersTimeout = options.headersTimeoutMs ?? 5000
  for (const [name, value] of [['maxConnections', maxConnections], ['headersTimeoutMs', headersTimeout]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`startHealthServer: "${name}" must be an integer of at least 1; got ${value}`)
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError('HEALTH_ENDPOINT', `port must be an integer from 0 to 65535 (e.g. ":8088"); got ${port}`)
  }
  const server = createServer({
    headersTimeout, requestTimeout: headersTimeout * 2,
    // Node checks those timeouts every 30 s by default; check at a fraction of them instead
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4))),
  }, (req, res) => {
    if (health.healthHandler(req, res)) return
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(errorBody('NOT_FOUND', `no route ${(req.url ?? '').slice(0, 200)}; try /health, /health/live, /health/ready or /metrics`))
  })
  guardConnections(server, { maxConnections, maxPerClient: options.maxConnectionsPerClient ?? 8 })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address() as AddressInfo
  let closing: Promise<void> | undefined
  return {
    // as the ingest and admin servers show theirs
    url: listenerUrl(addr.address, addr.port),
    port: addr.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}
