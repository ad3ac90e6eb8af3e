/**
 * A worker from one function: `runWorker` reads the webhook stream with the whole machinery (group, claims,
 * idempotency, retries, processing time limit, DLQ, acks) and calls your function per event. Run it with a
 * Redis and a PostgreSQL at hand, then stop it with Ctrl-C (SIGTERM/SIGINT drain and ack what is in flight):
 *
 *   REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx examples/run-worker.ts
 *
 * The test suite runs this file as a child process and kills it -9 mid-run (test/examples/run-worker.test.ts).
 */
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import { createDb, migrateToLatest, PipelineError, runWorker, streamKeys, type RunningWorker } from '../src/index.js'

/** Options of `startExampleWorker`. */
export interface ExampleWorkerOptions {
  readonly redisUrl: string
  readonly databaseUrl: string
  /** Key-space of the stream, group and the example's own hash. @defaultValue "" */
  readonly prefix?: string
  /** @defaultValue "example-worker" */
  readonly consumer?: string
  /** Work (ms) the example pretends each event takes. @defaultValue 0 */
  readonly workMs?: number
}

/**
 * Starts a worker that counts push events per repository in the Redis hash `<prefix>example:pushes`, keyed by
 * event id so a redelivered event counts once. Events without a repository fail permanently (to the DLQ).
 */
export async function startExampleWorker(options: ExampleWorkerOptions): Promise<{ worker: RunningWorker; close(): Promise<void> }> {
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null })
  const { db, close } = await createDb({ url: options.databaseUrl, poolSize: 2 })
  await migrateToLatest(db)
  const prefix = options.prefix ?? ''
  const worker = runWorker({
    redis, db, keys: streamKeys({ prefix }), consumer: options.consumer ?? 'example-worker', blockMs: 200,
    process: async (event, ctx) => {
      if (!event.repository) {
        throw new PipelineError('permanent', 'EXAMPLE_NO_REPOSITORY', `event ${event.id} has no repository; only repository events are counted`)
      }
      if (options.workMs) await new Promise((resolve) => setTimeout(resolve, options.workMs))
      if (ctx.signal.aborted) return
      await redis.hset(`${prefix}example:pushes`, event.id, event.repository)
    },
  })
  return {
    worker,
    close: async () => {
      await worker.close()
      await close()
      redis.disconnect()
    },
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const running = await startExampleWorker({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    prefix: process.env.EXAMPLE_PREFIX ?? '',
    workMs: Number(process.env.EXAMPLE_WORK_MS ?? 0),
  })
  console.log('example worker running; Ctrl-C stops it')
  const stop = () => void running.close().then(() => console.log('example worker stopped'))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
