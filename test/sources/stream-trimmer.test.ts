import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { trimLeaseKey } from '../../src/sources/keys.js'
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
    debug: (obj, msg) => { if (msg === 'stream trimmed') removed.push(Number((obj as { removed?: number }).removed)) },
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
    [{ stream, intervalMs: 100, lease: { ttlMs: 5 } }, /"lease.ttlMs" must be an integer from 10/],
    [{ stream, intervalMs: 100, lease: { key: '' } }, /"lease.key" must be a non-empty/],
    [{ stream: { trimSafe: async () => 0 }, intervalMs: 100, lease: {} }, /"lease" needs a stream with a redis client/],
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

/** Two trimmers of one stream, as two worker processes would run them: each with its own connection. */
async function twoTrimmers(url: string, intervalMs: number, ttlMs: number) {
  const stream = `trim-${randomUUID()}`
  // no reconnect: a connection killed from outside stays down, as a dead process's would
  const connections = [new Redis(url, { retryStrategy: () => null }), new Redis(url, { retryStrategy: () => null })]
  for (const c of connections) c.on('error', () => {})
  const trims: number[][] = [[], []]
  const trimmers = connections.map((redis, i) => startStreamTrimmer({
    stream: new StreamClient({ redis, stream }), intervalMs, lease: { ttlMs }, onTrimmed: () => { trims[i]!.push(Date.now()) },
  }))
  return {
    stream, connections, trims, trimmers,
    /** Waits for the first trim and returns which trimmer did it. */
    async firstHolder() {
      await eventually('a first trim', () => trims.some((t) => t.length > 0), 2000)
      return trims[0]!.length > 0 ? 0 : 1
    },
    async close() {
      await Promise.all(trimmers.map((t) => t.close()))
      for (const c of connections) if (c.status === 'ready') await c.quit()
    },
  }
}

Trimmer('two trimmers on one stream: only the lease holder trims, once per interval', async ({ redis }) => {
  const pair = await twoTrimmers(`redis://127.0.0.1:${redis.options.port}`, 100, 300)
  try {
    const holder = await pair.firstHolder()
    const startedAt = Date.now()
    await sleep(1200)
    // the sleep may run long on a busy machine: bound the count by the time that really passed
    const elapsedMs = Date.now() - startedAt
    assert.is(pair.trims[1 - holder]!.length, 0, 'the other trimmer never trimmed')
    const during = pair.trims[holder]!.filter((t) => t >= startedAt).length
    assert.ok(during >= 3 && during <= Math.floor(elapsedMs / 100) + 1,
      `the holder trimmed at most once per 100 ms interval, and kept trimming (${during} in ${elapsedMs} ms)`)
    assert.is(await redis.get(trimLeaseKey(pair.stream)) !== null, true)
  } finally {
    await pair.close()
  }
  assert.is(await redis.exists(trimLeaseKey(pair.stream)), 0, 'close gave the lease up')
})

Trimmer('when the lease holder closes, the other trimmer takes over at its next interval', async ({ redis }) => {
  const pair = await twoTrimmers(`redis://127.0.0.1:${redis.options.port}`, 100, 1000)
  try {
    const holder = await pair.firstHolder()
    await sleep(300)
    assert.is(pair.trims[1 - holder]!.length, 0)
    await pair.trimmers[holder]!.close()
    const closedAt = Date.now()
    await eventually('the other trims', () => pair.trims[1 - holder]!.length > 0, 2000)
    const tookMs = pair.trims[1 - holder]![0]! - closedAt
    assert.ok(tookMs < 1000, `took over ${tookMs} ms after the close, within the lease TTL (1000 ms)`)
  } finally {
    await pair.close()
  }
})

Trimmer('when the lease holder dies without giving the lease up, the other takes over as the lease lapses, not before', async ({ redis }) => {
  const pair = await twoTrimmers(`redis://127.0.0.1:${redis.options.port}`, 100, 800)
  try {
    const holder = await pair.firstHolder()
    await sleep(200)
    // the holder's connection is killed: it can neither renew nor release
    await redis.call('CLIENT', 'KILL', 'ID', String(await pair.connections[holder]!.call('CLIENT', 'ID')))
    const diedAt = Date.now()
    const leftMs = await redis.pttl(trimLeaseKey(pair.stream))
    assert.ok(leftMs > 0 && leftMs <= 800, `lease left ${leftMs} ms`)
    await eventually('the other trims', () => pair.trims[1 - holder]!.length > 0, 3000)
    const tookMs = pair.trims[1 - holder]![0]! - diedAt
    // the other asks again right when the lease lapses (its PTTL), so only timer latency comes on top: 500 ms
    // of it for a loaded machine, still short of waiting a whole TTL (800 ms) more
    assert.ok(tookMs >= leftMs - 20, `not before the lease lapsed (${tookMs} ms, lease had ${leftMs} ms left)`)
    assert.ok(tookMs <= leftMs + 500, `soon after it lapsed (${tookMs} ms, lease had ${leftMs} ms left)`)
  } finally {
    await pair.close()
  }
})

Trimmer('lease: false trims on every interval whatever another trimmer holds', async ({ redis }) => {
  const { s } = await streamOf(redis, 2)
  await redis.set(trimLeaseKey(s.stream), 'another-process', 'PX', 10_000)
  const leased: number[] = []
  const free: number[] = []
  const a = startStreamTrimmer({ stream: s, intervalMs: 50, onTrimmed: (n) => leased.push(n) })
  const b = startStreamTrimmer({ stream: s, intervalMs: 50, lease: false, onTrimmed: (n) => free.push(n) })
  try {
    await eventually('three unleased trims', () => free.length >= 3, 2000)
    assert.is(leased.length, 0, 'the leased trimmer waits for the other process')
  } finally {
    await Promise.all([a.close(), b.close()])
  }
  assert.is(await redis.get(trimLeaseKey(s.stream)), 'another-process', 'a close leaves a lease it never held alone')
})

Trimmer.run()
