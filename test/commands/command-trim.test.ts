import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { createApp } from '../../src/commands/command-app.js'
import { commandSnapshotKey, executeCommand } from '../../src/commands/command-log.js'
import { defineWorker } from '../../src/commands/command-worker.js'
import { sharedRedis } from '../helpers/servers.js'
import { waitUntil, warnings } from './command-helpers.js'

const Trim = suite<{ redis: Redis }>('command log trimming', {} as { redis: Redis })
Trim.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Trim.after(async (ctx) => { ctx.redis.disconnect() })

const appOn = (redis: Redis, stream: string, trimmed: number[]) => createApp({
  redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger: warnings(), trimIntervalMs: 50,
  onTrimmed: (n) => trimmed.push(n),
})

Trim('the log keeps every entry a slower worker has not acked, and is trimmed to nothing once every worker is done', async ({ redis }) => {
  const stream = `trim-${randomUUID()}`
  const trimmed: number[] = []
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const app = appOn(redis, stream, trimmed)
  await app.register(
    defineWorker({ name: 'fast', description: 'd', commands: { job: () => {} } }),
    defineWorker({ name: 'slow', description: 'd', sequential: true, commands: { job: () => gate } }),
  )
  await app.start()
  try {
    for (let i = 0; i < 10; i++) await app.execute('job', { i })
    await waitUntil('fast handled 10', () => app.info()[0]?.handled === 10)
    const trimsBefore = trimmed.length
    await waitUntil('two more trims ran', () => trimmed.length >= trimsBefore + 2)
    assert.is(Number(await redis.xlen(stream)), 10, 'nothing the slow worker still needs was trimmed')
    release()
    await waitUntil('slow handled 10', () => app.info()[1]?.handled === 10)
    // the trimmer hears XTRIM's reply after Redis ran it, so wait on its count (XLEN can read 0 before onTrimmed)
    const total = () => trimmed.reduce((a, b) => a + b, 0)
    await waitUntil('the trimmer removed 10', () => total() >= 10)
    assert.is(total(), 10)
    assert.is(Number(await redis.xlen(stream)), 0)
  } finally {
    release()
    await app.stop()
  }
})

Trim('a replaying worker keeps the log from its snapshot on (all of it without one), so a restart still rebuilds the same state', async ({ redis }) => {
  const stream = `trim-${randomUUID()}`
  const trimmed: number[] = []
  const make = (snapshotEvery: number) => {
    const seen = { current: undefined as { sum: number } | undefined }
    const worker = defineWorker<{ sum: number }>({
      name: 'summer', description: 'd', sequential: true,
      replay: { fresh: () => (seen.current = { sum: 0 }), load: (s) => (seen.current = s as { sum: number }), snapshotEvery },
      commands: { add: ({ payload, state }) => { state.sum += (payload as { n: number }).n } },
    })
    return { worker, seen }
  }
  const first = make(5)
  const app = appOn(redis, stream, trimmed)
  await app.register(first.worker)
  await app.start()
  for (let i = 1; i <= 12; i++) await app.execute('add', { n: i })
  await waitUntil('12 handled', () => app.info()[0]?.handled === 12)
  const trimsBefore = trimmed.length
  await waitUntil('two more trims ran', () => trimmed.length >= trimsBefore + 2)
  // the snapshot was saved after the 10th: the 10th (its id is the floor), 11th and 12th stay
  assert.is(Number(await redis.xlen(stream)), 3)
  await app.stop()

  const second = make(5)
  const again = appOn(redis, stream, [])
  await again.register(second.worker)
  await again.start()
  try {
    assert.equal(second.seen.current, { sum: 78 })
    assert.equal(first.seen.current, { sum: 78 })
  } finally {
    await again.stop()
  }
})

Trim('a replaying worker\'s snapshot also moves over the commands it skips, so the log behind them is trimmed', async ({ redis }) => {
  const stream = `trim-${randomUUID()}`
  const trimmed: number[] = []
  const worker = defineWorker<{ sum: number }>({
    name: 'summer', description: 'd', sequential: true,
    replay: { fresh: () => ({ sum: 0 }), snapshotEvery: 3 },
    commands: { add: ({ payload, state }) => { state.sum += (payload as { n: number }).n } },
  })
  const app = appOn(redis, stream, trimmed)
  await app.register(worker)
  await app.start()
  try {
    for (let i = 1; i <= 3; i++) await app.execute('add', { n: i })
    // a busy shared log: commands of other workers this one only skips
    for (let i = 0; i < 12; i++) await app.execute('someone-else/job', { i })
    await waitUntil('15 settled', () => (app.info()[0]?.handled ?? 0) + (app.info()[0]?.skipped ?? 0) === 15)
    const trimsBefore = trimmed.length
    await waitUntil('two more trims ran', () => trimmed.length >= trimsBefore + 2)
    // the snapshot after the 12th skipped entry is the floor: only that entry stays
    assert.is(Number(await redis.xlen(stream)), 1)
  } finally {
    await app.stop()
  }
  const again = appOn(redis, stream, [])
  let rebuilt: { sum: number } | undefined
  await again.register(defineWorker<{ sum: number }>({
    name: 'summer', description: 'd', sequential: true,
    replay: { fresh: () => ({ sum: 0 }), load: (s) => (rebuilt = s as { sum: number }), snapshotEvery: 3 },
    commands: { add: ({ payload, state }) => { state.sum += (payload as { n: number }).n } },
  }))
  await again.start()
  try {
    assert.equal(rebuilt, { sum: 6 })
    assert.is(again.info()[0]?.replay?.read, 0)
  } finally {
    await again.stop()
  }
})

Trim('a replaying worker\'s snapshot also moves over the commands it dead-letters, so a flood of bad ones is trimmed', async ({ redis }) => {
  const stream = `trim-${randomUUID()}`
  const trimmed: number[] = []
  const make = () => {
    const seen = { current: undefined as { sum: number } | undefined }
    const worker = defineWorker<{ sum: number }>({
      name: 'summer', description: 'd', sequential: true,
      replay: { fresh: () => (seen.current = { sum: 0 }), load: (s) => (seen.current = s as { sum: number }), snapshotEvery: 3 },
      commands: { add: { schema: { n: 'number' }, handle: ({ payload, state }) => { state.sum += (payload as { n: number }).n } } },
    })
    return { worker, seen }
  }
  const app = appOn(redis, stream, trimmed)
  await app.register(make().worker)
  await app.start()
  const ids: string[] = []
  try {
    ids.push(await app.execute('add', { n: 5 }))
    // a producer's bug: payloads the schema refuses, each dead-lettered
    for (let i = 0; i < 5; i++) ids.push(await executeCommand(redis, stream, 'add', { n: 'not a number' }))
    await waitUntil('6 settled', () => app.info()[0]?.handled === 1 && app.info()[0]?.failed === 5)
    await waitUntil('the snapshot moved over the dead letters', async () =>
      JSON.parse((await redis.get(commandSnapshotKey(stream, 'summer'))) ?? '{}').last_id === ids[5])
    const trimsBefore = trimmed.length
    await waitUntil('two more trims ran', () => trimmed.length >= trimsBefore + 2)
    assert.is(Number(await redis.xlen(stream)), 1, 'only the snapshot\'s own entry (the floor) stays')
  } finally {
    await app.stop()
  }
  const again = make()
  const restarted = appOn(redis, stream, [])
  await restarted.register(again.worker)
  await restarted.start()
  try {
    assert.equal(again.seen.current, { sum: 5 })
    assert.is(restarted.info()[0]?.replay?.read, 0)
  } finally {
    await restarted.stop()
  }
})

Trim('a replaying worker run by another process keeps the log its replay needs: an app without it trims none of that', async ({ redis }) => {
  const stream = `trim-${randomUUID()}`
  const trimmed: number[] = []
  const summer = () => {
    const seen = { current: undefined as { sum: number } | undefined }
    const worker = defineWorker<{ sum: number }>({
      name: 'summer', description: 'd', sequential: true,
      replay: { fresh: () => (seen.current = { sum: 0 }) },
      commands: { add: ({ payload, state }) => { state.sum += (payload as { n: number }).n } },
    })
    return { worker, seen }
  }
  // this process runs only the replaying worker and does not trim; the other runs a plain worker and trims
  const first = summer()
  const replaying = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger: warnings() })
  await replaying.register(first.worker)
  await replaying.start()
  const trimming = createApp({
    redis, stream, consumer: 'c2', blockMs: 100, drainTimeoutMs: 2000, logger: warnings(), trimIntervalMs: 50, onTrimmed: (n) => trimmed.push(n),
  })
  await trimming.register(defineWorker({ name: 'audit', description: 'd', commands: { add: () => {} } }))
  const again = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger: warnings() })
  try {
    await trimming.start()
    for (let i = 1; i <= 5; i++) await trimming.execute('add', { n: i })
    await waitUntil('both handled 5', () => trimming.info()[0]?.handled === 5 && replaying.info()[0]?.handled === 5)
    const trimsBefore = trimmed.length
    await waitUntil('two more trims ran', () => trimmed.length >= trimsBefore + 2)
    assert.is(Number(await redis.xlen(stream)), 5, 'the replaying worker has no snapshot, so it needs the whole log')
    await replaying.stop()
    const second = summer()
    await again.register(second.worker)
    await again.start()
    assert.equal(second.seen.current, { sum: 15 })
  } finally {
    await Promise.all([replaying.stop(), again.stop(), trimming.stop()])
  }
})

Trim('a worker that no longer replays, or whose group was destroyed, no longer holds the log back', async ({ redis }) => {
  for (const change of ['replay option removed', 'group destroyed'] as const) {
    const stream = `trim-${randomUUID()}`
    const replaying = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger: warnings() })
    await replaying.register(defineWorker({
      name: 'summer', description: 'd', sequential: true, replay: { fresh: () => ({}) }, commands: { add: () => {} },
    }))
    await replaying.start()
    for (let i = 1; i <= 3; i++) await replaying.execute('add', { n: i })
    await waitUntil('3 handled', () => replaying.info()[0]?.handled === 3)
    await replaying.stop()
    if (change === 'group destroyed') await redis.xgroup('DESTROY', stream, 'summer')
    const trimmed: number[] = []
    const app = appOn(redis, stream, trimmed)
    await app.register(
      defineWorker({ name: 'audit', description: 'd', startId: '0', commands: { add: () => {} } }),
      ...(change === 'replay option removed' ? [defineWorker({ name: 'summer', description: 'd', commands: { add: () => {} } })] : []),
    )
    await app.start()
    try {
      await waitUntil('audit handled 3', () => app.info()[0]?.handled === 3)
      await waitUntil(`the log trimmed to nothing (${change})`, async () => Number(await redis.xlen(stream)) === 0)
    } finally {
      await app.stop()
    }
  }
})

Trim.run()
