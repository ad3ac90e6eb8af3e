import { Queue, Worker } from 'bullmq'
import type { StreamEvent } from '../../src/core/event.js'
import { defineScenario, type Scenario, type ScenarioContext } from '../define-scenario.js'
import { countRows, insertEvents } from './insert-rows.js'

function connection(ctx: ScenarioContext) {
  const u = new URL(ctx.redisUrl)
  return {
    host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null,
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
  }
}

function bull(name: string, concurrency: number): Scenario {
  const queueName = 'events'
  return defineScenario({
    name,
    description: `baseline: BullMQ worker, concurrency ${concurrency}, each job INSERTs its row`,
    isBaseline: true,
    baseline: 'raw-insert',
    events: 20_000,
    // the sequential / 10-worker variants are context, not a target's baseline: one run keeps the default bench short
    repeat: concurrency === 10 ? 1 : 3,
    async setup(ctx) {
      // the prefix puts BullMQ's keys under the run's key-space, so cleanup deletes them
      const queue = new Queue(queueName, { connection: connection(ctx), prefix: `${ctx.keyPrefix}bull` })
      const all = ctx.data()
      for (let i = 0; i < all.length; i += 1000) {
        await queue.addBulk(all.slice(i, i + 1000).map((event) => ({
          name: 'event', data: event, opts: { jobId: event.id, removeOnComplete: true, removeOnFail: true },
        })))
      }
      await queue.close()
    },
    async run(ctx) {
      let done = 0
      let finished!: () => void
      const allDone = new Promise<void>((resolve) => { finished = resolve })
      const worker = new Worker<StreamEvent>(queueName, async (job) => {
        await insertEvents(ctx.pool, [{ event: job.data, streamId: job.id ?? '' }])
      }, { connection: connection(ctx), prefix: `${ctx.keyPrefix}bull`, concurrency, autorun: false })
      const failures: Error[] = []
      worker.on('completed', () => {
        done++
        ctx.progress(done)
        if (done + failures.length >= ctx.events) finished()
      })
      worker.on('failed', (_job, err) => { failures.push(err); if (done + failures.length >= ctx.events) finished() })
      const started = performance.now()
      void worker.run()
      let seconds: number
      try {
        await allDone
        seconds = (performance.now() - started) / 1000 // worker.close() waits out a blocking poll: not part of the figure
      } finally {
        await worker.close()
      }
      if (failures.length > 0) throw new Error(`${name}: ${failures.length} jobs failed, first: ${failures[0]?.message}`)
      const rows = await countRows(ctx.pool)
      if (rows !== ctx.events) throw new Error(`${name}: stored ${rows} rows, expected ${ctx.events}`)
      return { events: done, seconds }
    },
  })
}

/** Baseline: BullMQ at concurrency 10, one row INSERT per job. */
export const bullmq10 = bull('bullmq-10', 10)
/** Baseline: BullMQ at concurrency 50, one row INSERT per job. */
export const bullmq50 = bull('bullmq-50', 50)
