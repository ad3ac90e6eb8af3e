import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { PipelineError } from '../../src/core/errors.js'
import { createApp } from '../../src/commands/command-app.js'
import { retryCommandDeadLetter } from '../../src/commands/command-dlq.js'
import { commandDeadLetteredKey, commandSnapshotKey, executeCommand, writeDeadLetter } from '../../src/commands/command-log.js'
import { defineWorker, type CommandContext, type ReplayOptions } from '../../src/commands/command-worker.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { sharedRedis } from '../helpers/servers.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { pendingByGroup, waitUntil, warnings } from './command-helpers.js'

interface Totals { totals: Record<string, number>; applied: number }
type Ctx = CommandContext<Totals, { account: string; amount: number }>

const Replay = suite<{ redis: Redis; redisUrl: string }>('command worker replay', {} as { redis: Redis; redisUrl: string })
Replay.before(async (ctx) => {
  ctx.redisUrl = (await sharedRedis()).url
  ctx.redis = new Redis(ctx.redisUrl)
})
Replay.after(async (ctx) => { ctx.redis.disconnect() })

/**
 * A ledger worker whose state is the running total per account; `sideEffects` counts what must not repeat. Adds
 * to an account in `blocked` fail permanently; adds to one in `failOnReplay` fail during a replay only.
 */
function ledger(replay: Partial<ReplayOptions<Totals>> = {}) {
  const seen = {
    current: undefined as Totals | undefined, sideEffects: 0, replayed: 0, replayRuns: 0,
    blocked: new Set<string>(), failOnReplay: new Set<string>(),
  }
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
          if (isReplay) seen.replayRuns += 1
          if (payload.amount < 0) throw new PipelineError('permanent', 'NEGATIVE_AMOUNT', 'amounts must be positive')
          if (seen.blocked.has(payload.account)) throw new PipelineError('permanent', 'ACCOUNT_BLOCKED', `account ${payload.account} is blocked`)
          if (isReplay && seen.failOnReplay.has(payload.account)) throw new Error(`account ${payload.account} cannot be replayed`)
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
    assert.equal(app.info()[0]?.replay, { read: 20, failed: 0, deadLettered: 0, fromSnapshot: false, untilId: app.info()[0]?.replay?.untilId ?? null, done: true })
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

Replay('a dead-lettered command is skipped by the replay: not run, so not applied even when its handler would accept it now', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = ledger()
  first.seen.blocked.add('blocked')
  const app1 = appOn(redis, stream)
  await app1.register(first.worker)
  await app1.start()
  for (const c of [...adds(3), { account: 'blocked', amount: 7 }, { account: 'a1', amount: -5 }]) await app1.execute('ledger/add', c)
  await waitUntil('all settled', () => app1.info()[0]?.handled === 3 && app1.info()[0]?.failed === 2)
  await app1.stop()
  const before = structuredClone(first.seen.current)
  // the account is unblocked now: a replay that ran the dead-lettered add would apply it
  const second = ledger()
  const logger = warnings()
  const app = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger })
  await app.register(second.worker)
  await app.start()
  try {
    assert.equal(second.seen.current, before)
    assert.is(second.seen.replayRuns, 3, 'the handler ran for the three handled commands only')
    assert.equal([app.info()[0]?.replay?.read, app.info()[0]?.replay?.failed, app.info()[0]?.replay?.deadLettered], [5, 0, 2])
    assert.is(Number(await redis.xlen(`${stream}:dlq`)), 2, 'nothing dead-lettered twice')
    const [dead] = (await redis.xrange(`${stream}:dlq`, '-', '+')).map(([, f]) => f[f.indexOf('stream_id') + 1])
    const warning = logger.entries.find((e) => /replay: skipped 2 dead-lettered command/.test(e.msg))?.msg
    assert.ok(warning, JSON.stringify(logger.entries.map((e) => e.msg)))
    assert.match(warning, `the first entry ${dead} (command "ledger/add")`)
    assert.match(warning, 'hookstream commands dlq retry')
  } finally {
    await app.stop()
  }
})

Replay('a re-driven dead letter is applied once: live, and again once by each later replay', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = ledger()
  first.seen.blocked.add('blocked')
  const app1 = appOn(redis, stream)
  await app1.register(first.worker)
  await app1.start()
  for (const c of [...adds(2), { account: 'blocked', amount: 7 }]) await app1.execute('ledger/add', c)
  await waitUntil('all settled', () => app1.info()[0]?.handled === 2 && app1.info()[0]?.failed === 1)
  await app1.stop()
  const [[dlqId] = []] = await redis.xrange(`${stream}:dlq`, '-', '+')

  const second = ledger()
  const app2 = appOn(redis, stream)
  await app2.register(second.worker)
  await app2.start()
  try {
    assert.ok(await retryCommandDeadLetter(redis, stream, dlqId as string))
    await waitUntil('the re-driven command handled', () => second.seen.sideEffects === 1)
    assert.is(second.seen.current?.totals.blocked, 7)
  } finally {
    await app2.stop()
  }
  const after = structuredClone(second.seen.current)

  const third = ledger()
  const app3 = appOn(redis, stream)
  await app3.register(third.worker)
  await app3.start()
  try {
    assert.equal(third.seen.current, after)
    assert.is(third.seen.current?.totals.blocked, 7, 'the re-driven copy is replayed, the dead-lettered original is not')
    assert.equal([app3.info()[0]?.replay?.read, app3.info()[0]?.replay?.deadLettered, third.seen.replayed], [4, 1, 3])
  } finally {
    await app3.stop()
  }
})

Replay('a command redelivered after its dead letter was written (the process died before the ack) is acked, not run again', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  await redis.xgroup('CREATE', stream, 'ledger', '0', 'MKSTREAM')
  const handled = await executeCommand(redis, stream, 'ledger/add', { account: 'a0', amount: 1 })
  const dead = await executeCommand(redis, stream, 'ledger/add', { account: 'blocked', amount: 7 })
  // what a process leaves that handled the first, dead-lettered the second and died before the second's ack went out
  await redis.xreadgroup('GROUP', 'ledger', 'c1', 'COUNT', 2, 'STREAMS', stream, '>')
  await redis.xack(stream, 'ledger', handled)
  await writeDeadLetter(redis, `${stream}:dlq`, {
    worker: 'ledger', command: 'ledger/add', payload: '{"account":"blocked","amount":7}',
    error: new PipelineError('permanent', 'ACCOUNT_BLOCKED', 'account blocked is blocked'), streamId: dead, attempts: 1,
  }, commandDeadLetteredKey(stream, 'ledger'))

  // the account is unblocked now: running the redelivered command would apply what the replays skip
  const { worker, seen } = ledger()
  const app = appOn(redis, stream)
  await app.register(worker)
  await app.start()
  try {
    await waitUntil('the redelivered command acked', async () => (await pendingByGroup(redis, stream)).ledger === 0)
    assert.equal(seen.current, { totals: { a0: 1 }, applied: 1 })
    assert.is(seen.sideEffects, 0, 'its handler did not run')
    assert.is(Number(await redis.xlen(`${stream}:dlq`)), 1, 'not dead-lettered twice')
  } finally {
    await app.stop()
  }
})

Replay('a snapshot forgets the dead letters it covers, and a restart from it still skips the later ones', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = ledger({ snapshotEvery: 2 })
  first.seen.blocked.add('blocked')
  const app1 = appOn(redis, stream)
  await app1.register(first.worker)
  await app1.start()
  const record = commandDeadLetteredKey(stream, 'ledger')
  try {
    await app1.execute('ledger/add', { account: 'a0', amount: 1 })
    const blockedId = await app1.execute('ledger/add', { account: 'blocked', amount: 7 })
    // a dead letter counts towards snapshotEvery too: the second command's snapshot covers it
    await waitUntil('snapshot at the dead-lettered command', async () =>
      JSON.parse((await redis.get(commandSnapshotKey(stream, 'ledger'))) ?? '{}').last_id === blockedId)
    assert.is(await redis.zcard(record), 0, 'the snapshot covers the dead letter, so its record is gone')
    await app1.execute('ledger/add', { account: 'blocked', amount: 8 })
    await waitUntil('all settled', () => app1.info()[0]?.handled === 1 && app1.info()[0]?.failed === 2)
    assert.is(await redis.zcard(record), 1)
  } finally {
    await app1.stop()
  }
  const second = ledger({ snapshotEvery: 2 })
  const app = appOn(redis, stream)
  await app.register(second.worker)
  await app.start()
  try {
    assert.equal(second.seen.current, { totals: { a0: 1 }, applied: 1 })
    assert.equal([app.info()[0]?.replay?.fromSnapshot, app.info()[0]?.replay?.read, app.info()[0]?.replay?.deadLettered], [true, 1, 1])
  } finally {
    await app.stop()
  }
})

Replay('a replay warning about commands that failed again names the first one\'s entry, command and error', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  const first = await run(redis, stream, {}, [...adds(2), { account: 'flaky', amount: 3 }, { account: 'flaky', amount: 4 }])
  await first.app.stop()
  const ids = (await redis.xrange(stream, '-', '+')).map(([id]) => id)
  const logger = warnings()
  const app = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger })
  const second = ledger()
  second.seen.failOnReplay.add('flaky')
  await app.register(second.worker)
  await app.start()
  await app.stop()
  assert.equal([app.info()[0]?.replay?.read, app.info()[0]?.replay?.failed, app.info()[0]?.replay?.deadLettered], [4, 2, 0])
  const warning = logger.entries.find((e) => /replay: 2 of 4 commands failed again/.test(e.msg))?.msg
  assert.ok(warning, JSON.stringify(logger.entries.map((e) => e.msg)))
  assert.match(warning, `the first: command "ledger/add" (entry ${ids[2]}): account flaky cannot be replayed`)
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

Replay('a replay.load that throws on the snapshot fails the start with a message naming the worker, the key and the fix', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  await redis.set(commandSnapshotKey(stream, 'ledger'), JSON.stringify({ last_id: '1-0', state: { version: 1 }, saved_at: '2026-01-01T00:00:00.000Z' }))
  const app = appOn(redis, stream)
  await app.register(ledger({ load: (saved) => { throw new Error(`unknown state version ${(saved as { version: number }).version}`) } }).worker)
  try {
    await app.start()
    assert.unreachable()
  } catch (err) {
    const message = (err as Error).message
    assert.match(message, `worker "ledger": replay.load threw on snapshot ${commandSnapshotKey(stream, 'ledger')} (entry 1-0): unknown state version 1`)
    assert.match(message, 'fix replay.load, or delete the key to replay the whole log')
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

/** Starts test/commands/fixtures/crash-ledger.ts as a process of its own; `line(tag)` waits for its `<tag> <json>` line. */
function startLedgerProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/commands/fixtures/crash-ledger.ts'], {
    cwd: process.cwd(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { out += d })
  let exitedWith: number | string | undefined
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(exitedWith = code ?? signal ?? -1)))
  const line = async (tag: string) => {
    const find = () => new RegExp(`^${tag} (.*)$`, 'm').exec(out)?.[1]
    await waitUntil(`the ledger process printed ${tag}`, () => find() !== undefined || exitedWith !== undefined, 30_000)
    const found = find()
    if (found === undefined) throw new Error(`the ledger process exited (${exitedWith}) before it printed ${tag}; its output:\n${out}`)
    return JSON.parse(found) as { state: Totals; replay?: Record<string, unknown>; info?: Record<string, unknown> }
  }
  return { child, exited, line, output: () => out }
}

Replay('a command that crashed the worker until it was dead-lettered is not run by the replay of the next start', withTimeLimit(180_000, async ({ redis, redisUrl }) => {
  const stream = `replay-${randomUUID()}`
  const env = { REDIS_URL: redisUrl, COMMANDS_STREAM: stream, MAX_DELIVERIES: '2' }
  const log = new StreamClient({ redis, stream })
  const ids: string[] = []
  for (const c of [{ account: 'a0', amount: 1 }, { account: 'crash', amount: 100 }, { account: 'a1', amount: 2 }]) {
    ids.push(await executeCommand(redis, stream, 'ledger/add', c))
  }
  // deliveries 1 and 2 of the crashing command kill the process; the third start dead-letters it, then goes on
  for (let start = 1; start <= 2; start++) {
    const crashed = startLedgerProcess(env)
    assert.is(await crashed.exited, 'SIGKILL', crashed.output())
  }
  const third = startLedgerProcess(env)
  try {
    await third.line('READY')
    await waitUntil('the crashing command dead-lettered and the others handled', async () => {
      const group = (await log.info()).groups.find((g) => g.name === 'ledger')
      return Number(await redis.xlen(`${stream}:dlq`)) === 1 && group?.pending === 0 && group.lastDeliveredId === ids[2]
    }, 30_000)
  } finally {
    third.child.kill('SIGTERM')
  }
  assert.is(await third.exited, 0, third.output())
  const before = await third.line('STOPPED')
  assert.equal(before.state, { totals: { a0: 1, a1: 2 }, applied: 2 })
  const [letter] = await redis.xrange(`${stream}:dlq`, '-', '+')
  assert.equal([letter?.[1][letter[1].indexOf('stream_id') + 1], letter?.[1][letter[1].indexOf('error_code') + 1]], [ids[1], 'COMMAND_MAX_DELIVERIES'])

  // the restart rebuilds the state without the dead-lettered command, and applies each of the others once
  const fourth = startLedgerProcess(env)
  try {
    const after = await fourth.line('READY')
    assert.equal(after.state, before.state)
    assert.equal([after.replay?.read, after.replay?.failed, after.replay?.deadLettered], [3, 0, 1])
    assert.match(fourth.output(), `worker "ledger" replay: skipped 1 dead-lettered command(s), the first entry ${ids[1]}`)
  } finally {
    fourth.child.kill('SIGTERM')
  }
  assert.is(await fourth.exited, 0, fourth.output())
}))

Replay('a state JSON cannot keep (a Map) is not snapshotted: a warning names replay.save/load, and a restart still rebuilds it', async ({ redis }) => {
  const stream = `replay-${randomUUID()}`
  type Features = { features: Map<string, string> }
  const make = () => {
    const seen = { current: undefined as Features | undefined }
    const worker = defineWorker<Features>({
      name: 'features', description: 'd', sequential: true,
      replay: { fresh: () => (seen.current = { features: new Map() }), load: (saved) => (seen.current = saved as Features), snapshotEvery: 2 },
      commands: { 'feature/process': ({ payload, state }: CommandContext<Features, { id: string; title: string }>) => { state.features.set(payload.id, payload.title) } },
    })
    return { worker, seen }
  }
  const first = make()
  const logger = warnings()
  const app1 = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger })
  await app1.register(first.worker)
  await app1.start()
  try {
    for (const id of ['f-1', 'f-2', 'f-3', 'f-4', 'f-5']) await app1.execute('feature/process', { id, title: `title ${id}` })
    await waitUntil('5 handled', () => app1.info()[0]?.handled === 5)
  } finally {
    await app1.stop()
  }
  assert.is(await redis.get(commandSnapshotKey(stream, 'features')), null, 'no snapshot that would come back as {}')
  const failedSaves = logger.entries.filter((e) => /could not save its snapshot/.test(e.msg)).map((e) => e.msg)
  // tried after the 2nd and the 4th command, not after every command once the first try failed
  assert.is(failedSaves.length, 2, JSON.stringify(logger.entries.map((e) => e.msg)))
  const [warning = ''] = failedSaves
  assert.match(warning, 'a Map at "features"')
  assert.match(warning, 'replay.save')

  const second = make()
  const app = appOn(redis, stream)
  await app.register(second.worker)
  await app.start()
  try {
    assert.equal([...second.seen.current?.features ?? []], [...first.seen.current?.features ?? []])
    assert.is(second.seen.current?.features.size, 5)
  } finally {
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
