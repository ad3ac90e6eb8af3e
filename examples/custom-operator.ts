// A custom operator in a user's own pipeline. The README quotes this file and the test suite runs it
// (test/examples/custom-operator.test.ts). Run it yourself: REDIS_URL=… DATABASE_URL=… npx tsx examples/custom-operator.ts
import { Redis } from 'ioredis'
import { map, mergeMap } from 'rxjs'
import {
  batchStep, createDb, dedupe, extractToolConfig, fromRedisStreamBatches, isDone, migrateToLatest, parseTool, perEvent,
  PipelineError, poisonGuard, retryBackoff, settle, store, StreamClient, streamKeys, toDLQ, toEnvelope,
  type BatchStage, type Envelope, type WebhookEnvelope,
} from 'hookstream'

export interface RequireTenantOptions {
  /** Tenants let through. Events of any other tenant fail permanently. */
  readonly allowed: ReadonlySet<string>
}

/** Per event: fails events whose `tenant_id` is not in `allowed`, so they are dead-lettered instead of stored. */
export function requireTenant<E extends Envelope>(options: RequireTenantOptions): BatchStage<E> {
  const { allowed } = options
  return perEvent(map((env: E): E => {
    if (isDone(env) || allowed.has(env.message.event.tenant_id)) return env
    const failure = new PipelineError('permanent', 'TENANT_NOT_ALLOWED',
      `tenant "${env.message.event.tenant_id}" is not in requireTenant's allowed list (event ${env.message.event.id}); ` +
      'add it to "allowed" or route this tool to another pipeline')
    return { ...env, failure }
  }))
}

/** Per batch: counts each batch's events per tenant in one Redis round trip (hash `<prefix>tenant_counts`). */
export function countTenants<E extends Envelope>(options: { readonly redis: Redis; readonly key: string }): BatchStage<E> {
  return batchStep(async (envs) => {
    const pipe = options.redis.pipeline()
    for (const env of envs) pipe.hincrby(options.key, env.message.event.tenant_id, 1)
    const results = (await pipe.exec()) ?? []
    // Redis down: an infrastructure failure holds the batch (unacked) and runs this again once Redis answers
    const err = results.find(([e]) => e)?.[0]
    if (err) throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE', `counting tenants failed: ${err.message}`, { cause: err })
    return envs
  })
}

/** A per-event step with retries: the repository must be "owner/name" (a lookup that may fail transiently in real life). */
async function checkRepository<E extends Envelope>(env: E): Promise<E> {
  if (/^[^/]+\/[^/]+$/.test(env.message.event.repository)) return env
  return { ...env, failure: new PipelineError('permanent', 'REPOSITORY_INVALID', `event ${env.message.event.id}: repository must be "owner/name"`) }
}

/** Runs the chain until `count` events settled; returns each event's outcome and error code. */
export async function runExample(options: { redisUrl: string; databaseUrl: string; prefix?: string }) {
  const redis = new Redis(options.redisUrl)
  const { db, close } = await createDb({ url: options.databaseUrl })
  await migrateToLatest(db)
  const keys = streamKeys({ prefix: options.prefix ?? 'example:' })
  const tool = parseTool({ id: 'gh-main', provider: 'github', secret: 'change-me' })
  const tools = { get: async (id: string) => (id === tool.id ? tool : undefined) }

  const events = [
    { tenant: 'acme', id: `ok-${Date.now()}` },
    { tenant: 'intruder', id: `no-${Date.now()}` },
  ].map(({ tenant, id }) => ({
    id, event_type: 'webhook.github.push', repository: 'acme/api', tenant_id: tenant, tool_id: 'gh-main',
    payload: { ref: 'refs/heads/main' }, timestamp: new Date().toISOString(), retry_count: 0,
  }))
  await new StreamClient({ redis, stream: keys.stream }).addMany(events)

  const quickRetries = { maxRetries: 3, initialIntervalMs: 50, maxIntervalMs: 500, multiplier: 2, maxElapsedMs: 10_000 }
  const outcomes: { id: string; outcome?: string; code?: string }[] = []
  const stop = new AbortController()
  await new Promise<void>((resolve, reject) => {
    fromRedisStreamBatches({ redis, stream: keys.stream, group: keys.group, consumer: 'example', signal: stop.signal, blockMs: 200 })
      .pipe(
        map((msgs) => msgs.map(toEnvelope)),
        poisonGuard({ maxDeliveries: 10 }),
        dedupe({ redis, keys }),
        requireTenant({ allowed: new Set(['acme']) }),
        countTenants({ redis, key: `${options.prefix ?? 'example:'}tenant_counts` }),
        retryBackoff({ step: checkRepository, policy: () => quickRetries }),
        extractToolConfig({ tools }),
        store({ db }),
        toDLQ({ db, redis, keys }),
      )
      .pipe(
        settle({ redis, keys }),
        mergeMap((envs) => envs),
      )
      .subscribe({
        next: (env: WebhookEnvelope) => {
          outcomes.push({ id: env.message.event.id, outcome: env.outcome, code: env.failure?.code })
          if (outcomes.length === events.length) stop.abort()
        },
        complete: resolve,
        error: reject,
      })
  })
  await close()
  redis.disconnect()
  return outcomes
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runExample({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  }).then((outcomes) => console.table(outcomes), (err) => { console.error(err); process.exitCode = 1 })
}
