import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { PipelineError } from '../../src/core/errors.js'
import { executeCommand } from '../../src/commands/command-log.js'
import { defineWorker, type CommandContext } from '../../src/commands/command-worker.js'
import { startRedis, type TestRedis } from '../helpers/servers.js'
import { deadLetters, FAST_RETRY, pendingByGroup, testApp, waitUntil, warnings } from './command-helpers.js'

const App = suite<{ server?: TestRedis; redis?: Redis }>('command app', {})
App.before(async (ctx) => {
  ctx.server = await startRedis()
  ctx.redis = new Redis(ctx.server.url)
})
App.after(async (ctx) => {
  ctx.redis?.disconnect()
  await ctx.server?.stop()
})

App('a command reaches exactly its handler, in every worker that handles it', async ({ redis }) => {
  const calls: string[] = []
  const a = defineWorker({
    name: 'alpha', description: 'handles a and b',
    commands: { a: ({ payload }) => { calls.push(`alpha:a:${JSON.stringify(payload)}`) }, b: () => { calls.push('alpha:b') } },
  })
  const b = defineWorker({ name: 'beta', description: 'handles c', commands: { c: () => { calls.push('beta:c') } } })
  const app = testApp(redis!)
  await app.register(a, b)
  await app.start()
  try {
    await app.execute('a', { n: 1 })
    await app.execute('b')
    await app.execute('c', [1, 2])
    await app.execute('a', { n: 2 })
    await waitUntil('all four are settled', () => app.info().every((w) => w.handled + w.skipped === 4))
    assert.equal(calls.filter((c) => c.startsWith('alpha:a')).sort(), ['alpha:a:{"n":1}', 'alpha:a:{"n":2}'])
    assert.is(calls.filter((c) => c === 'alpha:b').length, 1)
    assert.is(calls.filter((c) => c === 'beta:c').length, 1)
    assert.is(calls.length, 4)
    const [alpha, beta] = app.info()
    assert.equal([alpha?.handled, alpha?.skipped, beta?.handled, beta?.skipped], [3, 1, 1, 3])
  } finally {
    await app.stop()
  }
  assert.equal(await pendingByGroup(redis!, app.stream), { alpha: 0, beta: 0 })
})

App('unknown commands are skipped, counted and acked, not dead-lettered', async ({ redis }) => {
  const app = testApp(redis!)
  await app.register(defineWorker({ name: 'only-a', description: 'd', commands: { a: () => {} } }))
  await app.start()
  for (let i = 0; i < 3; i++) await app.execute('nobody/handles-this', { i })
  await waitUntil('three skipped', () => app.info()[0]?.skipped === 3)
  await app.stop()
  const [info] = app.info()
  assert.equal([info?.handled, info?.failed, info?.skipped], [0, 0, 3])
  assert.ok(info?.lastProcessedId)
  assert.equal(await pendingByGroup(redis!, app.stream), { 'only-a': 0 })
  assert.is(await redis!.xlen(app.dlqStream), 0)
})

App('a throwing and a rejecting handler are retried, then dead-lettered, while other commands keep flowing', async ({ redis }) => {
  const attempts = { sync: 0, async: 0, permanent: 0 }
  let ok = 0
  const worker = defineWorker({
    name: 'flaky', description: 'fails on purpose', retry: FAST_RETRY,
    commands: {
      'sync/throw': () => { attempts.sync++; throw new Error('sync boom') },
      'async/reject': async () => { attempts.async++; await Promise.resolve(); throw new Error('async boom') },
      'perm/fail': () => { attempts.permanent++; throw new PipelineError('permanent', 'FEATURE_GONE', 'feature f-9 was deleted') },
      ok: async () => { ok++ },
    },
  })
  const logger = warnings()
  const app = testApp(redis!, { logger })
  await app.register(worker)
  await app.start()
  await app.execute('sync/throw', { id: 1 })
  await app.execute('async/reject', { id: 2 })
  await app.execute('perm/fail')
  for (let i = 0; i < 20; i++) await app.execute('ok', { i })
  await waitUntil('3 failed and 20 handled', () => app.info()[0]?.failed === 3 && app.info()[0]?.handled === 20)
  await app.stop()
  assert.equal(attempts, { sync: 3, async: 3, permanent: 1 })
  assert.is(ok, 20)
  assert.is(app.info()[0]?.retried, 4)
  const dlq = await deadLetters(redis!, app.dlqStream)
  assert.is(dlq.length, 3)
  const byCommand = Object.fromEntries(dlq.map((d) => [d.command, d]))
  assert.is(byCommand['sync/throw']?.worker, 'flaky')
  assert.match(byCommand['sync/throw']?.error ?? '', /sync boom/)
  assert.is(byCommand['sync/throw']?.error_code, 'COMMAND_HANDLER_FAILED')
  assert.is(byCommand['sync/throw']?.payload, '{"id":1}')
  assert.is(byCommand['sync/throw']?.attempts, '3')
  assert.match(byCommand['async/reject']?.error ?? '', /async boom/)
  assert.is(byCommand['perm/fail']?.error_code, 'FEATURE_GONE')
  assert.is(byCommand['perm/fail']?.attempts, '1')
  for (const d of dlq) assert.match(d.stream_id ?? '', /^\d+-\d+$/)
  assert.equal(await pendingByGroup(redis!, app.stream), { flaky: 0 })
  assert.is(logger.entries.filter((e) => /dead-lettered/.test(e.msg)).length, 3)
})

App('a payload that does not match the schema is dead-lettered at once, naming the field', async ({ redis }) => {
  let calls = 0
  const worker = defineWorker({
    name: 'strict', description: 'd', retry: FAST_RETRY,
    commands: { 'feature/process': { schema: { id: 'string', count: 'number?' }, handle: () => { calls++ } } },
  })
  const app = testApp(redis!)
  await app.register(worker)
  await app.start()
  // app.execute checks the schema before appending; nothing reaches the log
  try {
    await app.execute('feature/process', { id: 7 })
    assert.unreachable('app.execute accepted a bad payload')
  } catch (err) {
    assert.is((err as PipelineError).code, 'COMMAND_PAYLOAD_INVALID')
    assert.match((err as Error).message, /field "id" must be a string; got number/)
  }
  assert.is(await redis!.xlen(app.stream), 0)
  // a producer that skips the check: the worker dead-letters it without calling the handler
  await executeCommand(redis!, app.stream, 'feature/process', { id: 'f-1', count: 'many' })
  await redis!.call('XADD', app.stream, '*', 'command', 'feature/process', 'payload', '{not json')
  await app.execute('feature/process', { id: 'f-2' })
  await waitUntil('2 failed, 1 handled', () => app.info()[0]?.failed === 2 && app.info()[0]?.handled === 1)
  await app.stop()
  assert.is(calls, 1)
  assert.is(app.info()[0]?.retried, 0)
  const dlq = await deadLetters(redis!, app.dlqStream)
  assert.equal(dlq.map((d) => d.error_code), ['COMMAND_PAYLOAD_INVALID', 'COMMAND_PAYLOAD_INVALID'])
  assert.match(dlq[0]?.error ?? '', /payload field "count" must be a number \(or absent\); got string/)
  assert.match(dlq[1]?.error ?? '', /field "payload" is not valid JSON/)
})

App('after a clean restart the worker resumes after its last processed id and handles nothing twice', async ({ redis }) => {
  const seen: string[] = []
  const make = () => defineWorker({
    name: 'resumer', description: 'd', commands: { tick: ({ message }: CommandContext<unknown, unknown>) => { seen.push(message.id) } },
  })
  const first = testApp(redis!)
  await first.register(make())
  await first.start()
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push(await first.execute('tick', { i }))
  await waitUntil('5 handled', () => first.info()[0]?.handled === 5)
  await first.stop()
  assert.is(first.info()[0]?.lastProcessedId, ids[4])
  for (let i = 5; i < 8; i++) ids.push(await executeCommand(redis!, first.stream, 'tick', { i }))
  const second = testApp(redis!, { stream: first.stream })
  await second.register(make())
  await second.start()
  await waitUntil('3 more handled', () => second.info()[0]?.handled === 3)
  await new Promise((resolve) => setTimeout(resolve, 100))
  await second.stop()
  assert.is(second.info()[0]?.handled, 3)
  assert.equal([...seen].sort(), [...ids].sort())
  assert.is(new Set(seen).size, 8)
  assert.is(second.info()[0]?.lastProcessedId, ids[7])
})

App('a command delivered more than maxDeliveries times is dead-lettered before its handler runs', async ({ redis }) => {
  let calls = 0
  const worker = defineWorker({ name: 'poison', description: 'd', maxDeliveries: 2, startId: '0', commands: { crash: () => { calls++ } } })
  const app = testApp(redis!)
  await executeCommand(redis!, app.stream, 'crash')
  // three earlier deliveries to this consumer that never settled, as after three crashes
  await redis!.call('XGROUP', 'CREATE', app.stream, 'poison', '0')
  for (let i = 0; i < 3; i++) await redis!.call('XREADGROUP', 'GROUP', 'poison', 'test-consumer', 'STREAMS', app.stream, i === 0 ? '>' : '0')
  await app.register(worker)
  await app.start()
  await waitUntil('dead-lettered', () => app.info()[0]?.failed === 1)
  await app.stop()
  assert.is(calls, 0)
  const [letter] = await deadLetters(redis!, app.dlqStream)
  assert.is(letter?.error_code, 'COMMAND_MAX_DELIVERIES')
  assert.match(letter?.error ?? '', /delivered 4 times to worker "poison", more than maxDeliveries 2/)
  assert.equal(await pendingByGroup(redis!, app.stream), { poison: 0 })
})

App('100 workers start, all receive a broadcast command, and stop with nothing pending', async ({ redis }) => {
  const received = new Set<string>()
  const workers = Array.from({ length: 100 }, (_, i) => defineWorker({
    name: `w${i}`, description: `worker ${i}`,
    commands: { broadcast: ({ worker }) => { received.add(worker) }, [`only/w${i}`]: () => {} },
  }))
  const app = testApp(redis!)
  await app.register(...workers)
  await app.start()
  try {
    assert.ok(app.info().every((w) => w.status === 'running'))
    await app.execute('broadcast', { at: Date.now() })
    await app.execute('only/w42')
    await waitUntil('all 100 got it', () => app.info().every((w) => w.handled + w.skipped === 2), 15_000)
  } finally {
    await app.stop()
  }
  assert.is(received.size, 100)
  assert.is(app.info().find((w) => w.name === 'w42')?.handled, 2)
  assert.is(app.info().reduce((n, w) => n + w.handled, 0), 101)
  assert.ok(app.info().every((w) => w.status === 'stopped'))
  const pending = await pendingByGroup(redis!, app.stream)
  assert.is(Object.keys(pending).length, 100)
  // every worker closed the connections it opened
  await waitUntil('connections closed', async () => !/name=hookstream:/.test(String(await redis!.call('CLIENT', 'LIST'))))
  assert.equal(Object.values(pending).filter((n) => n !== 0), [])
})

App('register rejects a second worker of the same name; one registered while running starts at once', async ({ redis }) => {
  const app = testApp(redis!)
  const w = defineWorker({ name: 'dup', description: 'd', commands: { a: () => {} } })
  await app.register(w)
  try {
    await app.register(defineWorker({ name: 'dup', description: 'other', commands: { b: () => {} } }))
    assert.unreachable('duplicate name accepted')
  } catch (err) {
    assert.match((err as Error).message, /a worker named "dup" is already registered/)
  }
  await app.start()
  await app.register(defineWorker({ name: 'late', description: 'd', commands: { a: () => {} } }))
  await app.execute('a')
  await waitUntil('both handled it', () => app.info().every((i) => i.handled === 1))
  const stopping = app.stop()
  assert.is(app.stop(), stopping)
  await stopping
  assert.equal(app.info().map((i) => [i.name, i.description, i.status, i.commands]),
    [['dup', 'd', 'stopped', ['a']], ['late', 'd', 'stopped', ['a']]])
})

App('a retry due later than maxInlineRetryDelayMs is parked, not slept on: the worker\'s only slot keeps handling the log', async ({ redis }) => {
  const handled: string[] = []
  let slowTries = 0
  const slowAttempts: number[] = []
  const worker = defineWorker({
    name: 'parker', description: 'parks long retries', concurrency: 1, retry: { ...FAST_RETRY, maxRetries: 3 },
    commands: {
      later: ({ attempt }) => {
        slowTries += 1
        slowAttempts.push(attempt)
        // a receiver that asks to be called again in 1.5 s, once
        if (slowTries === 1) throw new PipelineError('transient', 'UPSTREAM_BUSY', 'come back later', { retryAfterMs: 1500 })
        handled.push('later')
      },
      now: ({ payload }) => { handled.push(`now:${(payload as { i: number }).i}`) },
    },
  })
  // another worker on the same log also handles "later": the parked copy is for "parker" only
  let otherLater = 0
  const other = defineWorker({ name: 'other', description: 'sees later once', commands: { later: () => { otherLater += 1 } } })
  const app = testApp(redis!, { maxInlineRetryDelayMs: 100 })
  await app.register(worker, other)
  await app.start()
  try {
    await app.execute('later')
    await waitUntil('the first try failed', () => slowTries === 1)
    for (let i = 0; i < 5; i++) await app.execute('now', { i })
    // with the one slot asleep on the retry, "later" would be handled first, after 1.5 s, and the five behind it;
    // parked, its copy goes back on the log behind them. Order, not a time bound: a busy box may take its time
    await waitUntil('the parked command came back and was handled', () => handled.includes('later'), 20_000)
    assert.equal(handled, ['now:0', 'now:1', 'now:2', 'now:3', 'now:4', 'later'])
    assert.equal(slowAttempts, [1, 2])
    const parker = app.info().find((w) => w.name === 'parker')
    assert.is(parker?.retried, 1)
    assert.is(parker?.failed, 0)
    await waitUntil('the other worker skipped the parked copy', () => (app.info().find((w) => w.name === 'other')?.skipped ?? 0) >= 1)
    assert.is(otherLater, 1)
    assert.equal(await pendingByGroup(redis!, app.stream), { other: 0, parker: 0 })
  } finally {
    await app.stop()
  }
})

App('a Retry-After longer than maxRetryAfterMs is cut to it', async ({ redis }) => {
  const tries: number[] = []
  const worker = defineWorker({
    name: 'capped', description: 'asks for a year', concurrency: 2, retry: FAST_RETRY,
    commands: {
      slow: () => {
        tries.push(Date.now())
        if (tries.length === 1) throw new PipelineError('transient', 'UPSTREAM_BUSY', 'back in a year', { retryAfterMs: 365 * 86_400_000 })
      },
    },
  })
  const app = testApp(redis!, { maxInlineRetryDelayMs: 100, maxRetryAfterMs: 300 })
  await app.register(worker)
  await app.start()
  try {
    await app.execute('slow')
    await waitUntil('the retry ran', () => tries.length === 2, 10_000)
    assert.ok(tries[1]! - tries[0]! >= 300, `retried after ${tries[1]! - tries[0]!} ms`)
    assert.is(app.info()[0]?.handled, 1)
  } finally {
    await app.stop()
  }
})

App.run()
