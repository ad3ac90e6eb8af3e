import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { PipelineError } from '../../src/core/errors.js'
import { createApp } from '../../src/commands/command-app.js'
import { commandSnapshotKey } from '../../src/commands/command-log.js'
import { defineWorker, type CommandContext, type ReplayOptions } from '../../src/commands/command-worker.js'
import { sharedRedis } from '../helpers/servers.js'
import { waitUntil, warnings } from './command-helpers.js'

interface Totals { totals: Record<string, number>; applied: number }
type Ctx = CommandContext<Totals, { account: string; amount: number }>

const Replay = suite<{ redis: Redis }>('command worker replay', {} as { redis: Redis })
Replay.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Replay.after(async (ctx) => { ctx.redis.disconnect() })

/** A ledger worker whose state is the running total per account; `sideEffects` counts what must not repeat. */
function ledger(replay: Partial<ReplayOptions<Totals>> = {}) {
  const seen = { current: undefined as Totals | undefined, sideEffects: 0, replayed: 0 }
  const worker = defineWorker<Totals>({
    name: 'ledger', description: 'Keeps account totals', sequential: true,
    replay: {
      fresh: () => (seen.current = { totals: {}, applied: 0 }),
      load: (saved) => (seen.current = saved as Totals),
      ...replay,
    },
    commands: {
      'ledger/add': {
        schema: { account: 'string', amount: 'number' },
        handle: ({ payload, state, isReplay }: Ctx) => {
          if (payload.amount < 0) throw new PipelineError('permanent', 'NEGATIVE_AMOUNT', 'amounts must be positive')
          state.totals[payload.account] = (state.totals[payload.account] ?? 0) + payload.amount
          state.applied += 1
          if (isReplay) seen.replayed += 1
          else seen.sideEffects += 1
        },
      },
    },
  })
  return { worker, seen }
}

const appOn = (redis: Redis, stream: string) =>
  createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger: warnings() })

async function run(redis: Redis, stream: string, replay: Partial<ReplayOptions<Totals>>, commands: { account: string; amount: number }[]) {
  const { worker, seen } = ledger(replay)
  const app = appOn(redis, stream)
  await app.register(worker)
  await app.start()
  for (const c of commands) await app.execute('ledger/add', c)
  await waitUntil('all settled', () => (app.info()[0]?.handled ?? 0) + (app.info()[0]?.failed ?? 0) >= commands.length)
  return { app, seen }
}

const adds = (n: number) => Array.from({ length: n }, (_, i) => ({ account: `a${i % 3}`, amount: i + 1 }))

Replay('a restarted worker rebuilds from the whole log with isReplay true: same state as before, no side effect repeated', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = await run(redis, stream, {}, adds(20))
  const before = structuredClone(first.seen.current)
  await first.app.stop()
  assert.is(first.seen.sideEffects, 20)

  const { worker, seen } = ledger()
  const app = appOn(redis, stream)
  await app.register(worker)
  await app.start()
  try {
    assert.equal(seen.current, before)
    assert.equal([seen.replayed, seen.sideEffects], [20, 0])
    assert.equal(app.info()[0]?.replay, { read: 20, failed: 0, fromSnapshot: false, untilId: app.info()[0]?.replay?.untilId ?? null, done: true })
    // live commands after the replay are handled as usual, on the rebuilt state
    await app.execute('ledger/add', { account: 'a0', amount: 100 })
    await waitUntil('live command handled', () => seen.sideEffects === 1)
    assert.is(seen.current?.totals.a0, (before?.totals.a0 ?? 0) + 100)
  } finally {
    await app.stop()
  }
})

Replay('with snapshots a restart replays only what came after the last snapshot and ends in the same state', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = await run(redis, stream, { snapshotEvery: 5 }, adds(12))
  const before = structuredClone(first.seen.current)
  await first.app.stop()
  const snapshot = JSON.parse((await redis.get(commandSnapshotKey(stream, 'ledger'))) as string)
  assert.is(snapshot.state.applied, 10, 'the snapshot holds the state after the 10th command')

  const second = ledger({ snapshotEvery: 5 })
  const app = appOn(redis, stream)
  await app.register(second.worker)
  await app.start()
  try {
    assert.equal(second.seen.current, before)
    assert.is(second.seen.replayed, 2)
    assert.equal([app.info()[0]?.replay?.read, app.info()[0]?.replay?.fromSnapshot], [2, true])
  } finally {
    await app.stop()
  }
})

Replay('a command that was dead-lettered fails again during the replay: counted and skipped, not dead-lettered twice', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = await run(redis, stream, {}, [...adds(3), { account: 'a1', amount: -5 }])
  await first.app.stop()
  assert.is(Number(await redis.xlen(`${stream}:dlq`)), 1)
  const before = structuredClone(first.seen.current)
  const second = ledger()
  const app = appOn(redis, stream)
  await app.register(second.worker)
  await app.start()
  try {
    assert.equal(second.seen.current, before)
    assert.equal([app.info()[0]?.replay?.read, app.info()[0]?.replay?.failed], [4, 1])
    assert.is(Number(await redis.xlen(`${stream}:dlq`)), 1)
  } finally {
    await app.stop()
  }
})

Replay('a replay warning about commands that failed again names the first one\'s entry, command and error', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = await run(redis, stream, {}, [...adds(2), { account: 'a1', amount: -5 }, { account: 'a2', amount: -6 }])
  await first.app.stop()
  const [dead] = (await redis.xrange(`${stream}:dlq`, '-', '+')).map(([, f]) => f[f.indexOf('stream_id') + 1])
  const logger = warnings()
  const app = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger })
  await app.register(ledger().worker)
  await app.start()
  await app.stop()
  const warning = logger.entries.find((e) => /replay: 2 of 4 commands failed again/.test(e.msg))?.msg
  assert.ok(warning, JSON.stringify(logger.entries.map((e) => e.msg)))
  assert.match(warning, `the first: command "ledger/add" (entry ${dead}): amounts must be positive`)
})

Replay('a snapshot that is not JSON fails the start with a message naming its key and the fix', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  await redis.set(commandSnapshotKey(stream, 'ledger'), '{"last_id":"1-0","state":')
  const app = appOn(redis, stream)
  await app.register(ledger().worker)
  try {
    await app.start()
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, `snapshot ${commandSnapshotKey(stream, 'ledger')} is not valid JSON`)
    assert.match((err as Error).message, 'delete the key to replay the whole log')
  } finally {
    await app.stop()
  }
})

Replay('a replay longer than replay.maxEntries fails the start with a message naming the option and the fix', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = await run(redis, stream, {}, adds(6))
  await first.app.stop()
  const app = appOn(redis, stream)
  await app.register(ledger({ maxEntries: 4 }).worker)
  try {
    await app.start()
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /worker "ledger" replay read 4 entries .* reached replay.maxEntries 4 .* save snapshots \(replay.snapshotEvery\) or raise replay.maxEntries/)
  } finally {
    await app.stop()
  }
})

Replay('a handler that outlasts the stop and ends after a restart snapshots its own run\'s state, not the rebuilt one', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  // each run of the slow command waits on its own gate and ignores the signal, so the first outlasts the drain
  const gates: (() => void)[] = []
  const worker = defineWorker<Totals>({
    name: 'ledger', description: 'Keeps account totals', sequential: true,
    replay: { fresh: () => ({ totals: {}, applied: 0 }), snapshotEvery: 1 },
    commands: {
      'ledger/add': async ({ payload, state }: Ctx) => {
        if (payload.account === 'slow') await new Promise<void>((resolve) => { gates.push(resolve) })
        state.totals[payload.account] = (state.totals[payload.account] ?? 0) + payload.amount
        state.applied += 1
      },
    },
  })
  const app = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 200, logger: warnings() })
  await app.register(worker)
  await app.start()
  try {
    await app.execute('ledger/add', { account: 'a0', amount: 1 })
    await waitUntil('first command handled', () => app.info()[0]?.handled === 1)
    const slowId = await app.execute('ledger/add', { account: 'slow', amount: 5 })
    await waitUntil('slow command running', () => gates.length === 1)
    await app.stop()
    await app.start()
    // the restart replayed without the pending slow command and got it again live, where it waits on gate 2
    await waitUntil('slow command running again', () => gates.length === 2)
    gates[0]?.()
    const snapshotOf = async () => JSON.parse((await redis.get(commandSnapshotKey(stream, 'ledger'))) ?? '{}') as { last_id?: string; state?: Totals }
    await waitUntil('the first run saved its snapshot', async () => (await snapshotOf()).last_id === slowId)
    // a snapshot as of the slow command must hold it: a replay from it never applies that command again
    assert.equal((await snapshotOf()).state, { totals: { a0: 1, slow: 5 }, applied: 2 })
  } finally {
    for (const open of gates) open()
    await app.stop()
  }
})

Replay('defineWorker refuses replay on a worker that is not sequential', () => {
  try {
    defineWorker({ name: 'w', description: 'd', replay: { fresh: () => ({}) }, commands: { c: () => {} } })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"replay" needs "sequential: true"/)
  }
})

Replay.run()
