import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { defineWorker, type CommandContext } from '../../src/commands/command-worker.js'
import { startRedis, type TestRedis } from '../helpers/servers.js'
import { pendingByGroup, testApp, waitUntil, warnings } from './command-helpers.js'

const Runtime = suite<{ server?: TestRedis; redis?: Redis }>('command worker runtime', {})
Runtime.before(async (ctx) => {
  ctx.server = await startRedis()
  ctx.redis = new Redis(ctx.server.url)
})
Runtime.after(async (ctx) => {
  ctx.redis?.disconnect()
  await ctx.server?.stop()
})

function tracked() {
  const t = { active: 0, max: 0, order: [] as number[] }
  const handle = async ({ payload }: CommandContext<unknown, { i: number }>) => {
    t.active++
    t.max = Math.max(t.max, t.active)
    await sleep(15)
    t.order.push(payload.i)
    t.active--
  }
  return { t, handle }
}

Runtime('sequential: true never runs two handlers of one worker at once and keeps log order', async ({ redis }) => {
  const seq = tracked()
  const par = tracked()
  const app = testApp(redis!)
  await app.register(
    defineWorker({ name: 'seq', description: 'd', sequential: true, commands: { job: seq.handle } }),
    defineWorker({ name: 'par', description: 'd', concurrency: 4, commands: { job: par.handle } }),
  )
  await app.start()
  for (let i = 0; i < 12; i++) await app.execute('job', { i })
  await waitUntil('both handled 12', () => app.info().every((w) => w.handled === 12))
  await app.stop()
  assert.is(seq.t.max, 1)
  assert.equal(seq.t.order, [...Array(12).keys()])
  assert.ok(par.t.max > 1, `default concurrency ran ${par.t.max} at once`)
  assert.ok(par.t.max <= 4, `concurrency 4 ran ${par.t.max} at once`)
})

Runtime('a handler still running at stop sees its signal, and its command comes back after restart', async ({ redis }) => {
  let aborted = 0
  const handled: { id: string; deliveryCount: number }[] = []
  const first = testApp(redis!, { drainTimeoutMs: 300 })
  await first.register(defineWorker({
    name: 'slow', description: 'd',
    commands: {
      long: ({ signal }) => new Promise((_, reject) => {
        signal.addEventListener('abort', () => { aborted++; reject(signal.reason) }, { once: true })
      }),
    },
  }))
  await first.start()
  const id = await first.execute('long')
  await waitUntil('the handler runs', () => first.info()[0]?.inFlight === 1)
  await first.stop()
  assert.is(aborted, 1)
  assert.equal([first.info()[0]?.handled, first.info()[0]?.failed], [0, 0])
  assert.equal(await pendingByGroup(redis!, first.stream), { slow: 1 })
  const second = testApp(redis!, { stream: first.stream })
  await second.register(defineWorker({
    name: 'slow', description: 'd', commands: { long: ({ message }) => { handled.push({ id: message.id, deliveryCount: message.deliveryCount }) } },
  }))
  await second.start()
  await waitUntil('handled after restart', () => handled.length === 1)
  await second.stop()
  assert.equal(handled, [{ id, deliveryCount: 2 }])
  assert.equal(await pendingByGroup(redis!, first.stream), { slow: 0 })
})

Runtime('handlers get the message id, timestamp, delivery count, attempt and the worker state', async ({ redis }) => {
  const state = { seen: 0 }
  let got: Record<string, unknown> = {}
  const app = testApp(redis!)
  await app.register(defineWorker({
    name: 'ctx', description: 'd', state,
    commands: {
      look: ({ worker, command, payload, message, state: s, attempt, signal }) => {
        s.seen++
        got = { worker, command, payload, id: message.id, ms: message.timestamp.getTime(), deliveryCount: message.deliveryCount, attempt, aborted: signal.aborted }
      },
    },
  }))
  await app.start()
  const id = await app.execute('look', { x: 1 })
  await waitUntil('handled', () => state.seen === 1)
  await app.stop()
  assert.equal(got, { worker: 'ctx', command: 'look', payload: { x: 1 }, id, ms: Number(id.split('-')[0]), deliveryCount: 1, attempt: 1, aborted: false })
})

Runtime('handlers and periodic runs execute follow-up commands on the same log, schema-checked', async ({ redis }) => {
  const done: string[] = []
  let rejected = ''
  const app = testApp(redis!)
  await app.register(
    defineWorker({
      name: 'planner', description: 'd', state: { sent: false },
      commands: {
        'order/place': async ({ payload, execute }: CommandContext<{ sent: boolean }, { id: string }>) => {
          await execute('invoice/create', { order: payload.id })
          try { await execute('invoice/create', { order: 7 }) } catch (err) { rejected = (err as Error).message }
        },
      },
      periodic: {
        every: 30,
        run: async ({ execute, state }) => {
          if (state.sent) return
          state.sent = true
          await execute('invoice/create', { order: 'tick' })
        },
      },
    }),
    defineWorker({
      name: 'billing', description: 'd',
      commands: { 'invoice/create': { schema: { order: 'string' }, handle: ({ payload }: CommandContext<unknown, { order: string }>) => { done.push(payload.order) } } },
    }),
  )
  await app.start()
  await app.execute('order/place', { id: 'o-1' })
  await waitUntil('both invoices created', () => done.length === 2)
  await app.stop()
  assert.equal(done.sort(), ['o-1', 'tick'])
  assert.match(rejected, /payload field "order" must be a string/)
  assert.is(await redis!.xlen(app.dlqStream), 0)
})

Runtime('a reading error is logged and the worker keeps going once Redis answers again', async ({ redis }) => {
  const logger = warnings()
  const app = testApp(redis!, { logger })
  let handled = 0
  await app.register(defineWorker({ name: 'survivor', description: 'd', commands: { a: () => { handled++ } } }))
  await app.start()
  // the group disappears (as after a Redis restart without data): the source recreates it
  await waitUntil('the worker reads', async () => ((await redis!.call('XINFO', 'CONSUMERS', app.stream, 'survivor')) as unknown[]).length === 1)
  assert.is(await redis!.call('XGROUP', 'DESTROY', app.stream, 'survivor'), 1)
  // the source meets NOGROUP on its next read and recreates the group: wait for that, not for a fixed pause
  await waitUntil('the group is back', async () => ((await redis!.call('XINFO', 'GROUPS', app.stream)) as unknown[]).length === 1)
  await app.execute('a')
  await waitUntil('handled after NOGROUP', () => handled === 1)
  await app.stop()
  assert.ok(logger.entries.some((e) => /NOGROUP/.test(e.msg)), JSON.stringify(logger.entries.map((e) => e.msg)))
})

Runtime.run()
