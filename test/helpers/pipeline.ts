/** Runs the webhook pipeline against the test servers, each run in its own key-space and database. */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { Redis } from 'ioredis'
import type { Subscription } from 'rxjs'
import { parseTool, type ToolConfig, type ToolInput } from '../../src/core/tool.js'
import type { StreamEvent } from '../../src/core/event.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { deliveryPipeline, type DeliveryEnvelope, type DeliveryPipelineOptions } from '../../src/pipelines/delivery.js'
import { webhookPipeline, type WebhookEnvelope, type WebhookPipelineOptions } from '../../src/pipelines/webhook.js'
import { startDelayedRetries } from '../../src/sources/delayed-retries.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { makeEvent } from './events.js'

export interface PipelineWorld {
  readonly redis: Redis
  readonly db: Db
  readonly keys: StreamKeys
  readonly stream: StreamClient
  readonly tools: Map<string, ToolConfig>
  readonly settled: WebhookEnvelope[]
  readonly retries: { event: string; attempt: number; code: string }[]
  addTool(input: ToolInput): ToolConfig
  enqueue(count: number, overrides?: Partial<StreamEvent> | ((i: number) => Partial<StreamEvent>)): Promise<StreamEvent[]>
  start(extra?: Partial<WebhookPipelineOptions>): { sub: Subscription; abort: AbortController }
  rowCount(table?: 'webhook_events' | 'webhook_dlq'): Promise<number>
  pending(): Promise<number>
  /** Entries the group has not read yet (XINFO GROUPS lag; null when Redis cannot tell, e.g. after a trim). */
  unread(): Promise<number | null>
  close(): Promise<void>
}

/** A world over the given Redis URL and a PostgreSQL database URL (already created). */
export async function pipelineWorld(redisUrl: string, databaseUrl: string): Promise<PipelineWorld> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  const db = await createDb({ url: databaseUrl, poolSize: 4 })
  await migrateToLatest(db.db)
  const keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  const stream = new StreamClient({ redis, stream: keys.stream })
  const tools = new Map<string, ToolConfig>()
  const settled: WebhookEnvelope[] = []
  const retries: PipelineWorld['retries'] = []
  const sinks: ForwardSink[] = []
  const subs: { sub: Subscription; abort: AbortController }[] = []
  const closing: Promise<void>[] = []
  return {
    redis, db, keys, stream, tools, settled, retries,
    addTool(input) {
      const tool = parseTool({ secret: 's3cret-value', ...input })
      tools.set(tool.id, tool)
      return tool
    },
    async enqueue(count, overrides = {}) {
      const events = Array.from({ length: count }, (_, i) =>
        makeEvent({ tool_id: 'store-tool', ...(typeof overrides === 'function' ? overrides(i) : overrides) }))
      for (let i = 0; i < events.length; i += 1000) await stream.addMany(events.slice(i, i + 1000))
      return events
    },
    start(extra = {}) {
      const forwardSink = new ForwardSink({ timeoutMs: 2000 })
      sinks.push(forwardSink)
      const abort = new AbortController()
      let sourceClosed!: () => void
      closing.push(new Promise<void>((resolve) => { sourceClosed = resolve }))
      const sub = webhookPipeline({
        redis, db: db.db, keys, forwardSink, consumer: 'c1', blockMs: 100, signal: abort.signal,
        tools: { get: async (id) => tools.get(id) },
        onRetry: (env, attempt, failure) => retries.push({ event: env.message.event.id, attempt, code: failure.code }),
        ...extra,
        onClosed: (info) => { sourceClosed(); extra.onClosed?.(info) },
      }).subscribe((env) => settled.push(env))
      const handle = { sub, abort }
      subs.push(handle)
      return handle
    },
    async rowCount(table = 'webhook_events') {
      const r = await db.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      return Number(r.n)
    },
    async pending() {
      const info = await stream.info()
      return info.groups.find((g) => g.name === keys.group)?.pending ?? 0
    },
    async unread() {
      const info = await stream.info()
      const group = info.groups.find((g) => g.name === keys.group)
      return group === undefined ? info.length : group.lag
    },
    async close() {
      for (const { sub, abort } of subs) { abort.abort(); sub.unsubscribe() }
      // a source closes its own Redis connections once what it had in flight is settled or its drain timeout
      // (10 s) is up: after a crash (an unsubscribe) that is the timeout, so wait for it, or its socket outlives the test
      await Promise.race([Promise.all(closing), new Promise((resolve) => setTimeout(resolve, 12_000).unref())])
      await Promise.all(sinks.map((s) => s.close()))
      await db.close()
      redis.disconnect()
    },
  }
}

export interface Receiver {
  readonly url: string
  /** Every request, with when its body had arrived (ms since epoch). */
  readonly requests: { headers: IncomingMessage['headers']; body: string; at: number }[]
  close(): Promise<void>
}

/** What a receiver answers: a status code, or a status with its own body and headers (default body "ok"). */
export type ReceiverAnswer = number | { status: number; body?: string; headers?: Record<string, string> }

/** A real HTTP receiver on 127.0.0.1 whose answer per request is decided by `respond`. */
export async function startReceiver(respond: (n: number, body: string) => ReceiverAnswer | Promise<ReceiverAnswer> = () => 200): Promise<Receiver> {
  const requests: Receiver['requests'] = []
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks).toString()
    requests.push({ headers: req.headers, body, at: Date.now() })
    const answer = await respond(requests.length, body)
    const { status, body: text = 'ok', headers = {} } = typeof answer === 'number' ? { status: answer } : answer
    res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(text)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

/** A running delivery pipeline of a test: what it settled, and `close()` (stop reading, drain, stop the delayed retries). */
export interface DeliveryRun {
  readonly settled: DeliveryEnvelope[]
  close(): Promise<void>
}

/**
 * Runs `deliveryPipeline` in the world's key-space with short timeouts, its tools from the world (or `tools`),
 * and a delayed-retry scheduler for its parked retries; `extra` overrides any option (sink, log, auto-disable …).
 */
export function startDeliveryRun(w: PipelineWorld, extra: Partial<DeliveryPipelineOptions> & Pick<DeliveryPipelineOptions, 'forwardSink'>): DeliveryRun {
  const settled: DeliveryEnvelope[] = []
  const abort = new AbortController()
  let onClosed: () => void = () => {}
  const closed = new Promise<void>((resolve) => { onClosed = resolve })
  const sub = deliveryPipeline({
    redis: w.redis, db: w.db.db, keys: w.keys, consumer: 'd1', blockMs: 100, signal: abort.signal, drainTimeoutMs: 1000,
    tools: { get: async (id) => w.tools.get(id) }, onClosed, ...extra,
  }).subscribe((env) => settled.push(env))
  const delayed = startDelayedRetries({ redis: w.redis, keys: w.keys, intervalMs: 50 })
  return {
    settled,
    close: async () => { abort.abort(); sub.unsubscribe(); await delayed.close(); await closed },
  }
}
