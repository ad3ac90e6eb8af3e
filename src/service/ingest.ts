import type { Cluster, Redis } from 'ioredis'
import type { Config } from '../config/load-config.js'
import { listenOn } from '../config/listen-address.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import { ingestBudget } from '../http/inflight-budget.js'
import { createIngestHandler } from '../http/ingest.js'
import { createRouter, startHttpServer, type Route, type RunningHttpServer } from '../http/server.js'
import { PartitionedStreamClient, StreamPartitions } from '../sources/partitions.js'
import { StreamClient } from '../sources/stream-client.js'
import type { Queue } from './connect.js'
import type { ServiceTelemetry } from './telemetry.js'

/** Options of `startIngest`. */
export interface StartIngestOptions {
  readonly config: Config
  readonly redis: Redis | Cluster
  readonly queue: Queue
  readonly tools: ToolRegistry
  readonly telemetry: ServiceTelemetry
  /** Extra routes next to `POST /webhooks/:toolId`. @defaultValue none */
  readonly routes?: readonly Route[]
}

/**
 * Starts the ingest listener (HTTP_ADDR): `POST /webhooks/:toolId` and the extra routes, with the front door's
 * limits (HTTP_MAX_CONNECTIONS, per-client connections, header and request timeouts, the in-flight body budget).
 *
 * @example
 * const ingest = await startIngest({ config, redis, queue, tools, telemetry })
 * console.log(`${ingest.url}/webhooks/gh-main`)
 */
export async function startIngest(options: StartIngestOptions): Promise<RunningHttpServer> {
  const { config, tools, telemetry: { metrics, logger, tracing } } = options
  // ingest's own connection with ioredis auto-pipelining: the scripts of requests handled in one turn of the event
  // loop go to Redis in one write instead of one each; the worker's connections keep their own command order
  const redis = isCluster(options.redis)
    ? options.redis.duplicate([], { enableAutoPipelining: true })
    : options.redis.duplicate({ enableAutoPipelining: true })
  redis.on('error', () => { /* reconnects; failures surface as 503 answers and through health */ })
  const partitions = new StreamPartitions({ redis, keys: config.keys, count: options.queue.partitions.count, key: options.queue.partitions.key })
  const stream = partitions.count > 1 ? new PartitionedStreamClient(partitions) : new StreamClient({ redis, stream: config.keys.stream })
  const inflightBudget = ingestBudget(config.http.maxInflightBytes, config.http.maxBodyBytes)
  metrics.setInflightBytes(() => inflightBudget.usedBytes)
  const handler = createIngestHandler({ inflightBudget,
    tools, stream, redis, keys: config.keys, maxBodyBytes: config.http.maxBodyBytes, maxJsonDepth: config.http.maxJsonDepth, metrics, logger, tracing: tracing.enabled,
    // one dedupe window: a provider's re-send is answered duplicate for as long as the worker remembers the event
    deliverySeenTtlSeconds: Math.max(1, Math.round(config.worker.idempotencyTtlMs / 1000)),
    ...(partitions.count > 1 ? { partitions } : {}),
    ...(config.http.rateLimit ? { rateLimit: config.http.rateLimit } : {}),
    ...(config.streamMaxLen ? { maxLen: config.streamMaxLen } : {}),
    ...(config.http.scrubHeaders ? { scrubHeaders: config.http.scrubHeaders } : {}),
  })
  const server = await listenOn('HTTP_ADDR', config.http.addr, () => startHttpServer(config.http.addr, createRouter([
    { method: 'POST', path: '/webhooks/:toolId', handler },
    ...(options.routes ?? []),
  ]), {
    maxConnections: config.http.maxConnections,
    maxConnectionsPerClient: config.http.maxConnectionsPerClient,
    onConnectionClosed: (reason) => metrics.connectionClosed(reason),
    headersTimeoutMs: config.http.headersTimeoutMs,
    requestTimeoutMs: config.http.requestTimeoutMs,
  })).catch((err: unknown) => { redis.disconnect(); throw err })
  let closing: Promise<void> | undefined
  return {
    url: server.url, port: server.port, server: server.server, connections: server.connections,
    close: () => (closing ??= server.close().finally(() => redis.disconnect())),
  }
}

function isCluster(redis: Redis | Cluster): redis is Cluster {
  return (redis as Cluster).isCluster === true
}
