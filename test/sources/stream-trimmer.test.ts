import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { entriesOfReadReply, StreamClient } from '../../src/sources/stream-client.js'
import { startStreamTrimmer, type StreamTrimmerOptions, type TrimmerLogger } from '../../src/sources/stream-trimmer.js'
import { sharedRedis, startRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'

const Trimmer = suite<{ redis: Redis }>('startStreamTrimmer', {} as { redis: Redis })
Trimmer.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Trimmer.after((ctx) => release(ctx, { redis: (r) => r.quit() }))

/** A stream of `n` entries with group `group` created at 0; returns the client and the ids in order. */
async function streamOf(redis: Redis, n: number, group = 'g'): Promise<{ s: StreamClient; ids: string[] }> {
  const s = new StreamClient({ redis, stream: `trim-${randomUUID()}` })
  const ids = await s.addMany(Array.from({ length: n }, () => makeEvent()))
  await s.ensureGroup(group)
  return { s, ids }
}

/** Delivers up to `count` new entries to `group` (they become pending) and returns their ids. */
async function deliver(redis: Redis, stream: string, group: string, count: number): Promise<string[]> {
  const reply = await redis.call('XREADGROUP', 'GROUP', group, 'c1', 'COUNT', count, 'STREAMS', stream, '>')
  return entriesOfReadReply(reply).map(([id]) => id)
}

const remaining = async (redis: Redis, stream: string) => ((await redis.xrange(stream, '-', '+')) as [string, unknown][]).map(([id]) => id)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function recordingLogger(): TrimmerLogger & { warns: string[]; removed: number[] } {
  const warns: string[] = []
  const removed: number[] = []
  return {
    warns, removed,
    warn: (obj) => { warns.push(String((obj as { err_message?: string }).err_message)) },
    debug: (obj) => { removed.push(Number((obj as { removed?: number }).removed)) },
  }
}

Trimmer('acked entries are trimmed within an interval; pending and never-delivered entries stay', async ({ redis }) => {
  const { s, ids } = await streamOf(redis, 10)
  assert.equal(await deliver(redis, s.stream, 'g', 6), ids.slice(0, 6))
  assert.is(await s.ack('g', ids.slice(0, 3)), 3)
  const logger = recordingLogger()
  const trimmed: number[] = []
  const trimmer = startStreamTrimmer({ stream: s, intervalMs: 50, logger, onTrimmed: (n) => trimmed.push(n) })
  try {
    await eventually('the 3 acked entries trimmed', async () => (await redis.xlen(s.stream)) === 7, 2000)
    // several more intervals: nothing a group still needs goes
    await sleep(200)
    assert.equal(await remaining(redis, s.stream), ids.slice(3))
    const group = (await s.info()).groups[0]
    assert.equal([group?.pending, group?.lag], [3, 4])
    assert.is(trimmed.reduce((a, b) => a + b, 0), 3)
    assert.ok(trimmed.length >= 3, `trimmed on every interval (${trimmed.length} runs)`)
    assert.equal(logger.removed, [3])
    assert.equal(logger.warns, [])
    // once the rest is delivered and acked, everything goes
    await deliver(redis, s.stream, 'g', 10)
    await s.ack('g', ids.slice(3))
    await eventually('stream empty', async () => (await redis.xlen(s.stream)) === 0, 2000)
  } finally {
    await trimmer.close()
  }
})

Trimmer('keep holds the newest N entries even when every group acked them', async ({ redis }) => {
  const { s, ids } = await streamOf(redis, 10)
  await deliver(redis, s.stream, 'g', 10)
  await s.ack('g', ids)
  const trimmer = startStreamTrimmer({ stream: s, intervalMs: 50, keep: 4 })
  try {
    await eventually('trimmed down to 4', async () => (await redis.xlen(s.stream)) === 4, 2000)
    await sleep(150)
    assert.equal(await remaining(redis, s.stream), ids.slice(6))
  } finally {
    await trimmer.close()
  }
})

Trimmer('a second group that is behind holds the trim back to its own position', async ({ redis }) => {
  const { s, ids } = await streamOf(redis, 10, 'fast')
  await s.ensureGroup('slow')
  await deliver(redis, s.stream, 'fast', 10)
  await s.ack('fast', ids)
  await deliver(redis, s.stream, 'slow', 4)
  await s.ack('slow', ids.slice(0, 2))
  const trimmer = startStreamTrimmer({ stream: s, intervalMs: 50 })
  try {
    // "slow" acked 2 and holds 2 pending: only its 2 acked entries may go
    await eventually('2 trimmed', async () => (await redis.xlen(s.stream)) === 8, 2000)
    await sleep(150)
    assert.equal(await remaining(redis, s.stream), ids.slice(2))
    await s.ack('slow', ids.slice(2, 4))
    await eventually('slow group caught up to 4', async () => (await redis.xlen(s.stream)) === 6, 2000)
    assert.equal(await remaining(redis, s.stream), ids.slice(4))
  } finally {
    await trimmer.close()
  }
})

Trimmer('a Redis error is logged at warn and the next interval tries again', async ({ redis }) => {
  const stream = `trim-${randomUUID()}`
  // a string where the stream should be: XINFO STREAM fails with WRONGTYPE on every run
  await redis.set(stream, 'not a stream')
  const logger = recordingLogger()
  const s = new StreamClient({ redis, stream })
  const trimmer = startStreamTrimmer({ stream: s, intervalMs: 20, logger })
  try {
    await eventually('two failed runs', () => logger.warns.length >= 2, 2000)
    assert.match(logger.warns[0] ?? '', /WRONGTYPE/)
    await redis.del(stream)
    const ids = await s.addMany([makeEvent(), makeEvent()])
    await s.ensureGroup('g')
    await deliver(redis, stream, 'g', 2)
    await s.ack('g', ids)
    await eventually('trimmed after the error cleared', async () => (await redis.xlen(stream)) === 0, 2000)
  } finally {
    await trimmer.close()
  }
})

Trimmer('Redis stopped and restarted: the trimmer keeps running and trims afterwards, no unhandled rejection', async () => {
  const server = await startRedis()
  const redis = new Redis(server.url, { retryStrategy: () => 50 })
  redis.on('error', () => {})
  const rejections: unknown[] = []
  const onRejection = (reason: unknown) => { rejections.push(reason) }
  process.on('unhandledRejection', onRejection)
  const trimmed: number[] = []
  const s = new StreamClient({ redis, stream: `trim-${randomUUID()}` })
  const trimmer = startStreamTrimmer({ stream: s, intervalMs: 30, onTrimmed: (n) => trimmed.push(n) })
  try {
    await eventually('a first run', () => trimmed.length >= 1, 2000)
    await server.stop()
    await sleep(300)
    await server.start()
    await eventually('client reconnected', () => redis.status === 'ready', 5000)
    const runsBefore = trimmed.length
    const ids = await s.addMany(Array.from({ length: 5 }, () => makeEvent()))
    await s.ensureGroup('g')
    await deliver(redis, s.stream, 'g', 5)
    await s.ack('g', ids)
    await eventually('trimmed after the restart', async () => (await redis.xlen(s.stream)) === 0, 3000)
    assert.ok(trimmed.length > runsBefore)
    assert.equal(rejections, [])
  } finally {
    await trimmer.close()
    process.off('unhandledRejection', onRejection)
    redis.disconnect()
    await server.stop()
  }
})

Trimmer('close stops trimming and a second call returns the same promise', async ({ redis }) => {
  const { s, ids } = await streamOf(redis, 4)
  const trimmer = startStreamTrimmer({ stream: s, intervalMs: 20 })
  const first = trimmer.close()
  assert.is(trimmer.close(), first)
  await first
  await deliver(redis, s.stream, 'g', 4)
  await s.ack('g', ids)
  await sleep(100)
  assert.is(await redis.xlen(s.stream), 4)
})

Trimmer('bad options throw a RangeError naming the option', ({ redis }) => {
  const stream = new StreamClient({ redis, stream: 'unused' })
  const cases: [StreamTrimmerOptions, RegExp][] = [
    [{ stream, intervalMs: 0 }, /"intervalMs" must be an integer from 10/],
    [{ stream, intervalMs: 1.5 }, /"intervalMs"/],
    [{ stream, intervalMs: Number.NaN }, /"intervalMs"/],
    [{ stream, intervalMs: 100, keep: -1 }, /"keep" must be an integer of at least 0; got -1/],
    [{ stream, intervalMs: 100, keep: 2.5 }, /"keep"/],
    [{ stream: {} as StreamClient, intervalMs: 100 }, /"stream" must be a StreamClient/],
  ]
  for (const [options, message] of cases) {
    try {
      startStreamTrimmer(options)
      assert.unreachable()
    } catch (err) {
      assert.instance(err, RangeError)
      assert.match((err as Error).message, message)
    }
  }
})

Trimmer.run()
