/** Shared pieces of the reliability tests: a key-space + database per test, counts, and a signed webhook sender. */
import { createHmac, randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'

export const SECRET = 's3cret-value'
/** The forward signing secret of every forwarding tool the fixtures declare (a config file must give one). */
export const FORWARD_SECRET = 'whsec_Zm9yd2FyZC1zaWduaW5nLWtleS1vZi10ZXN0cw=='

export interface Space {
  readonly redis: Redis
  readonly db: Db
  readonly keys: StreamKeys
  readonly stream: StreamClient
  /** Environment for `startServiceProcess`: this Redis, database and key prefix. */
  readonly env: Record<string, string>
  rows(table?: 'webhook_events' | 'webhook_dlq'): Promise<number>
  pending(): Promise<number>
  close(): Promise<void>
}

/** A fresh key prefix on `redisUrl` and a migrated database at `databaseUrl`. */
export async function openSpace(redisUrl: string, databaseUrl: string): Promise<Space> {
  const prefix = `rel-${randomUUID()}:`
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  const db = await createDb({ url: databaseUrl, poolSize: 2 })
  await migrateToLatest(db.db)
  const keys = streamKeys({ prefix })
  const stream = new StreamClient({ redis, stream: keys.stream })
  await stream.ensureGroup(keys.group)
  return {
    redis, db, keys, stream,
    env: { REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, STREAM_PREFIX: prefix },
    async rows(table = 'webhook_events') {
      const r = await db.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      return Number(r.n)
    },
    async pending() {
      return (await stream.info()).groups.find((g) => g.name === keys.group)?.pending ?? 0
    },
    async close() {
      redis.disconnect()
      await db.close()
    },
  }
}

/** YAML with one github tool per id (secret SECRET), each `store` unless a forward URL is given (signed with FORWARD_SECRET). */
export function toolsYaml(tools: Record<string, string | undefined>): string {
  return `tools:\n${Object.entries(tools).map(([id, forward]) => forward
    ? `  - { id: ${id}, provider: github, secret: ${SECRET}, tenant_id: acme, processing_mode: store_and_forward, forward_url: "${forward}", forward_secret: "${FORWARD_SECRET}" }\n`
    : `  - { id: ${id}, provider: github, secret: ${SECRET}, tenant_id: acme }\n`).join('')}`
}

/** One signed GitHub push delivery: URL path, headers and body. */
export function githubDelivery(toolId: string, delivery = randomUUID(), payload: unknown = { ref: 'refs/heads/main', repository: { full_name: 'acme/api' } }) {
  const body = JSON.stringify(payload)
  return {
    delivery, body, path: `/webhooks/${toolId}`,
    headers: {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
    },
  }
}

/** POSTs a signed delivery; resolves with the status, Retry-After and how long the answer took (bounded by `timeoutMs`). */
export async function post(baseUrl: string, toolId: string, timeoutMs = 5000): Promise<{ delivery: string; status: number; retryAfter: string | null; ms: number; code?: string }> {
  const d = githubDelivery(toolId)
  const started = Date.now()
  try {
    const res = await fetch(`${baseUrl}${d.path}`, { method: 'POST', body: d.body, headers: d.headers, signal: AbortSignal.timeout(timeoutMs) })
    const text = await res.text()
    const code = res.status >= 400 ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined
    return { delivery: d.delivery, status: res.status, retryAfter: res.headers.get('retry-after'), ms: Date.now() - started, ...(code ? { code } : {}) }
  } catch {
    return { delivery: d.delivery, status: 0, retryAfter: null, ms: Date.now() - started }
  }
}
