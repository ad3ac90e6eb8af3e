import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { defineWorker } from '../../src/commands/command-worker.js'
import { startRedis, type TestRedis } from '../helpers/servers.js'
import { testApp, waitUntil, warnings } from './command-helpers.js'

const Periodic = suite<{ server?: TestRedis; redis?: Redis }>('command worker periodic work', {})
Periodic.before(async (ctx) => {
  ctx.server = await startRedis()
  ctx.redis = new Redis(ctx.server.url)
})
Periodic.after(async (ctx) => {
  ctx.redis?.disconnect()
  await ctx.server?.stop()
})

// runs a worker of the same 20 ms interval until it ran three times: a wait on an event, not a sleep a busy box can outlast
async function threeReferenceTicks(redis: Redis): Promise<void> {
  let runs = 0
  const reference = testApp(redis)
  await reference.register(defineWorker({ name: 'reference', description: 'd', commands: {}, periodic: { every: 20, run: () => { runs++ } } }))
  await reference.start()
  await waitUntil('three reference runs', () => runs >= 3)
  await reference.stop()
}

Periodic('runs on its interval, never overlaps, a slow run skips ticks and logs a warning', async ({ redis }) => {
  const t = { runs: 0, active: 0, maxActive: 0, startedAt: [] as number[] }
  const logger = warnings()
  const app = testApp(redis!, { logger })
  await app.register(defineWorker({
    name: 'ticker', description: 'd', commands: {},
    periodic: {
      every: '40ms', slowMs: 100,
      run: async () => {
        t.runs++
        t.active++
        t.maxActive = Math.max(t.maxActive, t.active)
        t.startedAt.push(Date.now())
        await sleep(t.runs === 2 ? 190 : 2)
        t.active--
      },
    },
  }))
  const started = Date.now()
  await app.start()
  await waitUntil('five runs', () => t.runs >= 5)
  await app.stop()
  assert.is(t.maxActive, 1)
  // the first run comes one interval after start, not at once
  assert.ok((t.startedAt[0] ?? 0) - started >= 35, `first run after ${(t.startedAt[0] ?? 0) - started} ms`)
  const periodic = app.info()[0]?.periodic
  assert.ok(periodic, 'periodic info is reported')
  assert.ok((periodic?.skippedTicks ?? 0) >= 3, `skipped ${periodic?.skippedTicks} ticks during the 190 ms run`)
  assert.is(periodic?.runs, t.runs)
  assert.is(periodic?.everyMs, 40)
  assert.ok(periodic?.lastRunAt instanceof Date)
  assert.ok((periodic?.lastDurationMs ?? -1) >= 0)
  const slow = logger.entries.filter((e) => /took \d+ ms, more than 100 ms/.test(e.msg))
  assert.is(slow.length, 1)
  assert.is(slow[0]?.obj.worker, 'ticker')
  assert.ok(Number(slow[0]?.obj.durationMs) >= 180)
})

Periodic('a run in progress sees its signal abort on stop, and no run starts afterwards', async ({ redis }) => {
  let runs = 0
  let sawAbort = false
  const app = testApp(redis!)
  await app.register(defineWorker({
    name: 'waiter', description: 'd', commands: {},
    periodic: {
      every: 20,
      run: ({ signal }) => new Promise<void>((resolve) => {
        runs++
        signal.addEventListener('abort', () => { sawAbort = true; resolve() }, { once: true })
      }),
    },
  }))
  await app.start()
  await waitUntil('a run started', () => runs === 1)
  const t0 = Date.now()
  await app.stop()
  assert.ok(Date.now() - t0 < 1000, 'stop did not wait for the drain timeout')
  assert.ok(sawAbort)
  // once a reference worker with the same interval, started after the stop, ran three times, the stopped one had
  // three ticks' time to start a run too
  await threeReferenceTicks(redis!)
  assert.is(runs, 1)
})

Periodic('a run that throws is logged and kept in info, and the next tick runs again', async ({ redis }) => {
  let runs = 0
  const logger = warnings()
  const app = testApp(redis!, { logger })
  await app.register(defineWorker({
    name: 'thrower', description: 'd', commands: {},
    periodic: { every: 20, run: () => { runs++; if (runs === 1) throw new Error('tick failed') } },
  }))
  await app.start()
  await waitUntil('three runs', () => runs >= 3)
  const infoDuring = app.info()[0]?.periodic
  await app.stop()
  assert.ok(logger.entries.some((e) => /periodic work of worker "thrower" failed: tick failed/.test(e.msg)))
  assert.is(infoDuring?.lastError, null)
})

Periodic('a stop while the app is still starting leaves no periodic run going and no worker running', async ({ redis }) => {
  let runs = 0
  const app = testApp(redis!)
  await app.register(defineWorker({ name: 'early', description: 'd', commands: {}, periodic: { every: 20, run: () => { runs++ } } }))
  const starting = app.start()
  await app.stop()
  await starting.catch(() => {})
  // once a worker with the same interval ran three times, a leaked schedule would have too
  await threeReferenceTicks(redis!)
  assert.is(runs, 0)
  assert.is(app.info()[0]?.status, 'stopped')
})

Periodic.run()
