// Run by redelivery-crash.test.ts in its own process: the webhook pipeline with a tool lookup that ends the
// process (exit code 70) when a batch holds an event of tool "crash-tool", as an event that crashes its worker
// (a native module's segfault, an out-of-memory kill) does. Every other event is of tool "store-tool" and is stored.
// Environment: REDIS_URL, DATABASE_URL, STREAM_PREFIX, CONSUMER, MAX_DELIVERIES, CLAIM_IDLE_MS.
import { Redis } from 'ioredis'
import { parseTool } from '../../src/core/tool.js'
import { createDb } from '../../src/db/database.js'
import { webhookPipeline } from '../../src/pipelines/webhook.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { streamKeys } from '../../src/sources/keys.js'

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`crashing-worker-child: set ${name}`)
  return value
}
const redis = new Redis(env('REDIS_URL'), { maxRetriesPerRequest: null })
const db = await createDb({ url: env('DATABASE_URL'), poolSize: 2 })
const storeTool = parseTool({ id: 'store-tool', provider: 'github', secret: 's3cret-value' })
const sink = new ForwardSink()
const stop = new AbortController()
webhookPipeline({
  redis, db: db.db, keys: streamKeys({ prefix: env('STREAM_PREFIX') }), forwardSink: sink, consumer: env('CONSUMER'),
  maxDeliveries: Number(env('MAX_DELIVERIES')), claimIdleMs: Number(env('CLAIM_IDLE_MS')), batchSize: 10, blockMs: 200,
  signal: stop.signal,
  tools: {
    async get(id) {
      if (id === 'crash-tool') process.exit(70)
      return id === storeTool.id ? storeTool : undefined
    },
  },
}).subscribe({
  complete: () => void Promise.all([sink.close(), db.close()]).finally(() => redis.disconnect()),
})
process.once('SIGTERM', () => stop.abort())
