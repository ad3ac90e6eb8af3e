// A custom operator in a user's own pipeline. The README quotes this file and the test suite runs it
// (test/examples/custom-operator.test.ts). Run it yourself: REDIS_URL=… DATABASE_URL=… npx tsx examples/custom-operator.ts
import { Redis } from 'ioredis'
import { map, type MonoTypeOperatorFunction } from 'rxjs'
import {
  createDb, dedupe, extractToolConfig, fromRedisStream, isDone, migrateToLatest, parseTool, PipelineError,
  settle, store, StreamClient, streamKeys, toDLQ, toEnvelope, type Envelope, type WebhookEnvelope,
} from 'hookstream'

export interface RequireTenantOptions {
  /** Tenants let through. Events of any other tenant fail permanently. */
  readonly allowed: ReadonlySet<string>
}

/** Fails events whose `tenant_id` is not in `allowed`, so they are dead-lettered instead of stored. */
export function requireTenant<E extends Envelope>(options: RequireTenantOptions): MonoTypeOperatorFunction<E> {
  const { allowed } = options
  return map((env) => {
    if (isDone(env) || allowed.has(env.message.event.tenant_id)) return env
    const failure = new PipelineError('permanent', 'TENANT_NOT_ALLOWED',
      `tenant "${env.message.event.tenant_id}" is not in requireTenant's allowed list (event ${env.message.event.id}); ` +
      'add it to "allowed" or route this tool to another pipeline')
    return { ...env, failure }
  })
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

  const outcomes: { id: string; outcome?: string; code?: string }[] = []
  const stop = new AbortController()
  await new Promise<void>((resolve, reject) => {
    fromRedisStream({ redis, stream: keys.stream, group: keys.group, consumer: 'example', signal: stop.signal, blockMs: 200 })
      .pipe(
        map(toEnvelope),
        dedupe({ redis, keys }),
        requireTenant({ allowed: new Set(['acme']) }),
        extractToolConfig({ tools }),
        store({ db }),
        toDLQ({ db, redis, keys }),
        settle({ redis, keys }),
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
