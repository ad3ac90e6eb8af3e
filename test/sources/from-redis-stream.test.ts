import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { mergeMap, type Subscription } from 'rxjs'
import type { StreamMessage } from '../../src/core/envelope.js'
import { fromRedisStream, fromRedisStreamBatches, type FromRedisStreamOptions } from '../../src/sources/from-redis-stream.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { sharedRedis, startRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { startRedisProxy, type ProxiedConnection } from '../helpers/redis-proxy.js'
import { release } from '../helpers/release.js'
import { withTimeLimit } from '../helpers/time-limit.js'

const Source = suite<{ redis: Redis; url: string }>('fromRedisStream', {} as { redis: Redis; url: string })
Source.before(async (ctx) => {
  ctx.url = (await sharedRedis()).url
  ctx.redis = new Redis(ctx.url)
})
Source.after((ctx) => release(ctx, { redis: (r) => r.quit() }))

function setup(redis: Redis, extra: Partial<FromRedisStreamOptions> = {}) {
  const stream = `t-${randomUUID()}`
  const client = new StreamClient({ redis, stream })
  const options: FromRedisStreamOptions = { redis, stream, group: 'g', consumer: 'c1', blockMs: 100, ...extra }
  return { stream, client, options }
}

/** Subscribes and keeps every message, unsettled, in `got`. */
function hold(options: FromRedisStreamOptions) {
  const got: StreamMessage[] = []
  let closed: { drained: boolean; unsettled: number } | undefined
  const sub = fromRedisStream({ ...options, onClosed: (r) => { closed = r } }).subscribe((m) => got.push(m))
  return { got, sub, closed: () => closed }
}

/**
 * Subscribes to the batch form and settles each message `settleAfterMs` after it came; notes, for each batch, how
 * many messages were handed out and still unsettled when it came.
 */
function settleEach(options: FromRedisStreamOptions, settleAfterMs = 20) {
  const batches: (readonly StreamMessage[])[] = []
  const unsettledAtHandOut: number[] = []
  let unsettled = 0
  let closed: { drained: boolean; unsettled: number } | undefined
  const sub = fromRedisStreamBatches({ ...options, onClosed: (r) => { closed = r } }).subscribe((batch) => {
    batches.push(batch)
    unsettledAtHandOut.push(unsettled)
    unsettled += batch.length
    for (const m of batch) setTimeout(() => { unsettled -= 1; m.settle() }, settleAfterMs)
  })
  return { batches, unsettledAtHandOut, sub, got: () => batches.flat(), closed: () => closed }
}

async function closedAfter(sub: Subscription, h: { closed: () => unknown }) {
  sub.unsubscribe()
  await eventually('source closed', () => h.closed() !== undefined)
}

Source('creates the missing group, then re-reads its own pending entries one at a time, each once the one before settled, before new ones', async ({ redis }) => {
  const { client, options } = setup(redis, { batchSize: 10, drainTimeoutMs: 0 })
  const first = await client.addMany(Array.from({ length: 5 }, () => makeEvent()))
  const a = hold(options)
  await eventually('5 delivered', () => a.got.length === 5)
  await closedAfter(a.sub, a) // crash-like: nothing settled
  const info = await client.info()
  assert.equal(info.groups.map((g) => [g.name, g.pending]), [['g', 5]])
  const later = await client.addMany(Array.from({ length: 3 }, () => makeEvent()))
  const b = settleEach(options)
  await eventually('8 delivered', () => b.got().length === 8)
  assert.equal(b.got().map((m) => m.streamId), [...first, ...later])
  assert.equal(b.got().map((m) => m.deliveryCount), [2, 2, 2, 2, 2, 1, 1, 1])
  // one of them that crashes the process again is then the only one whose delivery count goes up
  assert.equal(b.batches.map((batch) => batch.length), [1, 1, 1, 1, 1, 3])
  assert.equal(b.unsettledAtHandOut.slice(0, 5), [0, 0, 0, 0, 0])
  await eventually('all acked', async () => (await client.info()).groups[0]!.pending === 0)
  await closedAfter(b.sub, b)
})

Source('reads no further than maxInFlight while nothing settles, then exactly the freed room', async ({ redis }) => {
  const { client, options } = setup(redis, { batchSize: 20, maxInFlight: 7 })
  await client.addMany(Array.from({ length: 30 }, () => makeEvent()))
  const h = hold(options)
  await eventually('7 delivered', () => h.got.length === 7)
  await new Promise((r) => setTimeout(r, 300))
  assert.is(h.got.length, 7)
  // what Redis delivered to the group is what we hold: no read ran ahead of the credit
  assert.is((await client.info()).groups[0]!.pending, 7)
  for (const m of h.got.slice(0, 3)) m.settle()
  await eventually('10 delivered', () => h.got.length === 10)
  await new Promise((r) => setTimeout(r, 200))
  assert.is(h.got.length, 10)
  assert.is((await client.info()).groups[0]!.pending, 7)
  for (const m of h.got.slice(3)) m.settle()
  await closedAfter(h.sub, h)
})

Source('the batch form hands out each read as one batch within the credit; settling frees room per message', async ({ redis }) => {
  const { client, options } = setup(redis, { batchSize: 20, maxInFlight: 7 })
  const ids = await client.addMany(Array.from({ length: 12 }, () => makeEvent()))
  const batches: (readonly StreamMessage[])[] = []
  let closed: { drained: boolean; unsettled: number } | undefined
  const sub = fromRedisStreamBatches({ ...options, onClosed: (r) => { closed = r } }).subscribe((b) => batches.push(b))
  await eventually('a first batch', () => batches.length === 1)
  await new Promise((r) => setTimeout(r, 200))
  assert.equal(batches.map((b) => b.length), [7])
  assert.is((await client.info()).groups[0]!.pending, 7)
  for (const m of batches[0]!.slice(0, 5)) m.settle()
  await eventually('a second batch', () => batches.length === 2)
  assert.equal(batches.map((b) => b.length), [7, 5])
  for (const m of [...batches[0]!.slice(5), ...batches[1]!]) m.settle()
  assert.equal(batches.flat().map((m) => m.streamId), ids)
  sub.unsubscribe()
  await eventually('source closed', () => closed !== undefined)
  assert.equal(closed, { drained: true, unsettled: 0 })
  assert.is((await client.info()).groups[0]!.pending, 0)
})

Source('with readLingerMs, entries arriving at a steady rate come in a few fuller batches, none lost (without it, about one batch each)', async ({ redis }) => {
  const run = async (readLingerMs: number) => {
    const { client, options } = setup(redis, { batchSize: 500, readLingerMs })
    const batches: { size: number; at: number }[] = []
    const sub = fromRedisStreamBatches(options).subscribe((b) => {
      batches.push({ size: b.length, at: Date.now() })
      for (const m of b) m.settle()
    })
    const ids: string[] = []
    for (let i = 0; i < 40; i++) {
      ids.push(await client.add(makeEvent()))
      await new Promise((r) => setTimeout(r, 10))
    }
    await eventually('all 40 read', () => batches.reduce((n, b) => n + b.size, 0) >= 40)
    sub.unsubscribe()
    assert.is(batches.reduce((n, b) => n + b.size, 0), 40, 'each entry once')
    return batches
  }
  const lingered = await run(150)
  const span = lingered[lingered.length - 1]!.at - lingered[0]!.at
  // reads of new entries start at least 150 ms apart (a read's own time may vary, hence the slack of 2)
  assert.ok(lingered.length <= Math.floor(span / 150) + 2, `${lingered.length} batches in ${span} ms`)
  const eager = await run(0)
  assert.ok(eager.length > 2 * lingered.length, `without the linger ${eager.length} batches, with it ${lingered.length}`)
})

async function xreadgroupCalls(redis: Redis): Promise<number> {
  const stats = (await redis.call('INFO', 'commandstats')) as string
  return Number(/cmdstat_xreadgroup:calls=(\d+)/.exec(stats)?.[1] ?? 0)
}

Source('with a backlog, messages settled one by one are read a quarter of the read size at a time, not one each', async () => {
  // its own server, so Redis's command statistics count only this source's reads (sources other suites left
  // reading the shared server added theirs: 36 calls once)
  const server = await startRedis()
  const redis = new Redis(server.url)
  try {
    const { client, options } = setup(redis, { batchSize: 40 })
    await client.addMany(Array.from({ length: 200 }, () => makeEvent()))
    const before = await xreadgroupCalls(redis)
    const seen = new Set<string>()
    let settled = 0
    // one message at a time, 2 ms each: the way forwards finish, each on its own turn of the event loop
    const sub = fromRedisStream(options).pipe(mergeMap(async (m) => {
      seen.add(m.streamId)
      await new Promise((r) => setTimeout(r, 2))
      m.settle()
      settled++
    }, 1)).subscribe()
    try {
      await eventually('200 settled', () => settled === 200, 30_000)
    } finally {
      sub.unsubscribe()
    }
    const reads = (await xreadgroupCalls(redis)) - before
    assert.is(seen.size, 200)
    // 200 / 10 (a quarter of 40) reads of the backlog, plus the pending-list read at start and blocked reads at the end;
    // reading each freed slot at once took ~160
    assert.ok(reads <= 30, `${reads} XREADGROUP calls for 200 messages`)
    assert.ok(reads >= 5, `${reads} XREADGROUP calls: the counter works`)
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Source('drains a 100,000-entry backlog through a slow subscriber within maxInFlight and flat heap', withTimeLimit(180_000, async ({ redis }) => {
  const { client, options } = setup(redis, { batchSize: 200, maxInFlight: 200 })
  const total = 100_000
  const small = makeEvent({ payload: { n: 1 } })
  for (let i = 0; i < total; i += 5000) {
    await client.addMany(Array.from({ length: 5000 }, (_, j) => ({ ...small, id: `e-${i + j}` })))
  }
  let unsettled = 0
  let maxUnsettled = 0
  let done = 0
  const heap: number[] = []
  const seen = new Set<string>()
  let closed = false
  let sub: Subscription | undefined
  const finished = new Promise<void>((resolve, reject) => {
    sub = fromRedisStream({ ...options, onClosed: () => { closed = true } }).pipe(
      mergeMap(async (m) => {
        unsettled += 1
        maxUnsettled = Math.max(maxUnsettled, unsettled)
        // deliberately slow: every message waits for a timer before it settles
        await new Promise((r) => setTimeout(r, 2))
        seen.add(m.event.id)
        unsettled -= 1
        m.settle()
        done += 1
        // measure what is retained, not garbage waiting for a collection (npm test runs node with --expose-gc)
        if (done % 5000 === 0) { (globalThis as { gc?: () => void }).gc?.(); heap.push(process.memoryUsage().heapUsed) }
        if (done === total) resolve()
      }),
    ).subscribe({ error: reject })
  })
  await finished
  assert.is(seen.size, total)
  assert.ok(maxUnsettled <= 200, `at most maxInFlight unsettled; saw ${maxUnsettled}`)
  // flat heap: the spread over the drain stays far below what buffering the backlog would take (~100 MB)
  const spread = Math.max(...heap.slice(2)) - Math.min(...heap.slice(2))
  assert.ok(typeof (globalThis as { gc?: unknown }).gc === 'function', 'run with node --expose-gc (npm test does)')
  assert.ok(spread < 20 * 1024 * 1024, `heap spread ${(spread / 1048576).toFixed(1)} MB`)
  await eventually('all acked', async () => (await client.info()).groups[0]!.pending === 0)
  sub!.unsubscribe()
  await eventually('source closed', () => closed)
}))

Source('acks settled ids together in one XACK, and only after they settled', async () => {
  // its own server, so Redis's command statistics count only this source's XACKs
  const server = await startRedis()
  const redis = new Redis(server.url)
  try {
    const { client, options } = setup(redis, { batchSize: 50 })
    await client.addMany(Array.from({ length: 20 }, () => makeEvent()))
    const h = hold(options)
    await eventually('20 delivered', () => h.got.length === 20)
    const xacks = async () => Number(/cmdstat_xack:calls=(\d+)/.exec(String(await redis.info('commandstats')))?.[1] ?? 0)
    await new Promise((r) => setTimeout(r, 100))
    assert.is(await xacks(), 0)
    assert.is((await client.info()).groups[0]!.pending, 20)
    for (const m of h.got.slice(0, 12)) m.settle()
    await eventually('acked', async () => (await client.info()).groups[0]!.pending === 8)
    await new Promise((r) => setTimeout(r, 100))
    assert.is(await xacks(), 1, 'the 12 settles of one turn went out as one XACK')
    const pending = (await redis.xpending(options.stream, 'g', '-', '+', 50)) as [string][]
    assert.equal(pending.map(([id]) => id), h.got.slice(12).map((m) => m.streamId))
    for (const m of h.got.slice(12)) m.settle()
    await closedAfter(h.sub, h)
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Source('claims entries a dead consumer left pending once idle past claimIdleMs and hands them out one at a time, each delivery counted once', async ({ redis }) => {
  const { stream, client, options } = setup(redis, { claimIdleMs: 300 })
  await client.ensureGroup('g')
  const ids = await client.addMany(Array.from({ length: 4 }, () => makeEvent()))
  await redis.xreadgroup('GROUP', 'g', 'dead', 'COUNT', 4, 'STREAMS', stream, '>')
  const h = settleEach({ ...options, consumer: 'alive' })
  await eventually('claimed', () => h.got().length === 4, 5000)
  assert.equal(h.got().map((m) => m.streamId), ids)
  assert.equal(h.got().map((m) => m.deliveryCount), [2, 2, 2, 2])
  assert.equal(h.batches.map((batch) => batch.length), [1, 1, 1, 1])
  assert.equal(h.unsettledAtHandOut, [0, 0, 0, 0])
  await eventually('all acked', async () => (await client.info()).groups[0]!.pending === 0)
  assert.equal((await client.info()).groups[0]!.consumers.find((c) => c.name === 'dead')?.pending, 0)
  await closedAfter(h.sub, h)
})

Source('an entry taken over from a dead consumer waits until the messages in flight settled, and their delivery counts stay as they were', async ({ redis }) => {
  const { stream, client, options } = setup(redis, { claimIdleMs: 300, batchSize: 10 })
  await client.ensureGroup('g')
  const [dead] = await client.addMany([makeEvent()])
  await redis.xreadgroup('GROUP', 'g', 'dead', 'COUNT', 1, 'STREAMS', stream, '>')
  const fresh = await client.addMany(Array.from({ length: 3 }, () => makeEvent()))
  const h = hold({ ...options, consumer: 'alive' })
  await eventually('3 new entries delivered', () => h.got.length === 3)
  const pendingRows = async () => ((await redis.xpending(stream, 'g', '-', '+', 10)) as [string, string, number, number][])
    .map(([id, owner, , count]) => [id, owner, Number(count)])
  await eventually('the dead consumer\'s entry taken over', async () => (await pendingRows()).some(([id, owner]) => id === dead && owner === 'alive'), 5000)
  assert.equal(h.got.map((m) => m.streamId), fresh)
  assert.equal(await pendingRows(), [[dead, 'alive', 1], ...fresh.map((id) => [id, 'alive', 1])])
  for (const m of h.got) m.settle()
  await eventually('the taken-over entry handed out', () => h.got.length === 4)
  assert.equal([h.got[3]!.streamId, h.got[3]!.deliveryCount], [dead, 2])
  h.got[3]!.settle()
  await eventually('all acked', async () => (await client.info()).groups[0]!.pending === 0)
  await closedAfter(h.sub, h)
})

Source('an undecodable entry comes out marked with a clear error and does not block the stream', async ({ redis }) => {
  const { stream, client, options } = setup(redis)
  await redis.xadd(stream, '*', 'other', 'x')
  await redis.xadd(stream, '*', 'event', '{not json')
  await redis.xadd(stream, '*', 'event', JSON.stringify({ ...makeEvent({ tool_id: 'gh' }), repository: 42 }))
  const good = makeEvent()
  await client.add(good)
  const h = hold(options)
  await eventually('4 delivered', () => h.got.length === 4)
  const [missing, garbled, invalid, ok] = h.got as [StreamMessage, StreamMessage, StreamMessage, StreamMessage]
  assert.is(missing.decodeError?.code, 'UNDECODABLE_ENTRY')
  assert.match(missing.decodeError!.message, /no "event" field/)
  assert.equal(missing.fields, { other: 'x' })
  assert.is(garbled.decodeError?.code, 'UNDECODABLE_ENTRY')
  assert.match(garbled.decodeError!.message, /not valid JSON/)
  assert.is(invalid.decodeError?.code, 'INVALID_EVENT')
  assert.match(invalid.decodeError!.message, /"repository" must be a string.*entry/)
  assert.is(invalid.event.tool_id, 'gh')
  assert.is(ok.decodeError, undefined)
  assert.equal(ok.event, good)
  for (const m of h.got) m.settle()
  await closedAfter(h.sub, h)
})

Source('unsubscribing stops reading, acks what settles within the drain timeout, and closes its connections', async ({ redis }) => {
  const { client, options } = setup(redis, { batchSize: 10, drainTimeoutMs: 500, consumer: `drain-${randomUUID()}` })
  await client.addMany(Array.from({ length: 10 }, () => makeEvent()))
  const h = hold(options)
  await eventually('10 delivered', () => h.got.length === 10)
  h.sub.unsubscribe()
  const before = (await client.info()).groups[0]!.lastDeliveredId
  await client.addMany(Array.from({ length: 5 }, () => makeEvent()))
  for (const m of h.got.slice(0, 6)) m.settle()
  await eventually('closed', () => h.closed() !== undefined)
  assert.equal(h.closed(), { drained: false, unsettled: 4 })
  const info = await client.info()
  assert.is(info.groups[0]!.pending, 4)
  assert.is(info.groups[0]!.lastDeliveredId, before)
  assert.is(h.got.length, 10)
  const clients = (await redis.call('CLIENT', 'LIST')) as string
  assert.not.match(clients, new RegExp(`name=hookstream:${options.consumer}:`))
})

Source('an aborted signal completes the observable at once, and closes only after the in-flight messages settle', async ({ redis }) => {
  const { client, options } = setup(redis, { batchSize: 5 })
  await client.addMany(Array.from({ length: 5 }, () => makeEvent()))
  const ac = new AbortController()
  let completed = false
  let drained: unknown
  const got: StreamMessage[] = []
  fromRedisStream({ ...options, signal: ac.signal, onClosed: (r) => { drained = r } })
    .subscribe({ next: (m) => got.push(m), complete: () => { completed = true } })
  await eventually('5 delivered', () => got.length === 5)
  ac.abort()
  await eventually('completed', () => completed)
  assert.is(drained, undefined, 'not closed while 5 messages are in flight')
  assert.is((await client.info()).groups[0]!.pending, 5)
  for (const m of got) m.settle()
  await eventually('closed', () => drained !== undefined)
  assert.equal(drained, { drained: true, unsettled: 0 })
  assert.is((await client.info()).groups[0]!.pending, 0)
})

Source('survives a Redis restart: reconnects, resumes, nothing lost or handed out twice', async () => {
  const server = await startRedis({ appendonly: true })
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  try {
    const { client, options } = setup(redis, { batchSize: 20 })
    await client.addMany(Array.from({ length: 100 }, () => makeEvent()))
    const errors: Error[] = []
    const seen: string[] = []
    const sub = fromRedisStream({ ...options, onError: (e) => errors.push(e) }).subscribe((m) => { seen.push(m.streamId); m.settle() })
    await eventually('first 100', () => seen.length === 100)
    await new Promise((r) => setTimeout(r, 100)) // let the last XACK reach the AOF
    await server.stop()
    await new Promise((r) => setTimeout(r, 300))
    await server.start()
    await client.addMany(Array.from({ length: 100 }, () => makeEvent()))
    await eventually('200 after restart', () => seen.length === 200, 15_000)
    assert.is(new Set(seen).size, 200)
    await eventually('nothing pending', async () => (await client.info()).groups[0]!.pending === 0)
    assert.ok(errors.length > 0, 'the connection loss was reported through onError')
    sub.unsubscribe()
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Source('recreates the group when Redis restarts without its data (NOGROUP) instead of looping on the error', async () => {
  const server = await startRedis({ appendonly: false })
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  try {
    const { client, options } = setup(redis)
    await client.addMany(Array.from({ length: 3 }, () => makeEvent()))
    const errors: Error[] = []
    const seen: string[] = []
    const sub = fromRedisStream({ ...options, onError: (e) => errors.push(e) }).subscribe((m) => { seen.push(m.event.id); m.settle() })
    await eventually('first 3', () => seen.length === 3)
    await server.kill()
    await server.start()
    const fresh = makeEvent()
    await eventually('stream reachable', async () => { try { await client.add(fresh); return true } catch { return false } })
    await eventually('event after data loss delivered', () => seen.includes(fresh.id), 15_000)
    assert.ok(errors.some((e) => /NOGROUP/.test(e.message)), 'NOGROUP was reported and handled')
    assert.ok(errors.filter((e) => /NOGROUP/.test(e.message)).length < 5, 'no error loop')
    sub.unsubscribe()
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Source('entries it acked that Redis hands out again after a restart lost the acks (an older snapshot) are acked again, not left pending', async () => {
  const server = await startRedis({ appendonly: false })
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  let sub: Subscription | undefined
  try {
    const { client, options } = setup(redis, { claimIdleMs: 300 })
    const ids = await client.addMany(Array.from({ length: 5 }, () => makeEvent()))
    await client.ensureGroup('g')
    await redis.call('SAVE') // the snapshot a restart goes back to: the group has read nothing
    const seen: string[] = []
    sub = fromRedisStream({ ...options, onError: () => {} }).subscribe((m) => { seen.push(m.streamId); m.settle() })
    await eventually('5 handed out', () => seen.length === 5)
    await eventually('5 acked', async () => (await client.info()).groups[0]?.pending === 0 && (await client.info()).groups[0]?.lastDeliveredId === ids[4])
    await server.kill()
    await server.start() // from the snapshot: the 5 entries are new to the group again
    await eventually('redelivered by Redis', async () => {
      try { return (await client.info()).groups[0]?.lastDeliveredId === ids[4] } catch { return false }
    })
    await eventually('nothing pending', async () => (await client.info()).groups[0]?.pending === 0, 5000)
    assert.equal(seen, ids, 'each entry handed out once')
  } finally {
    sub?.unsubscribe()
    redis.disconnect()
    await server.stop()
  }
})

Source('keeps the claim of slow but live work fresh so another consumer does not steal it', async ({ redis }) => {
  const { client, options } = setup(redis, { claimIdleMs: 400 })
  const [id] = await client.addMany([makeEvent()])
  const slow = hold({ ...options, consumer: 'slow' })
  await eventually('slow got it', () => slow.got.length === 1)
  const other = hold({ ...options, consumer: 'other' })
  await new Promise((r) => setTimeout(r, 1500)) // well past claimIdleMs: the entry would be claimable if not refreshed
  assert.is(other.got.length, 0)
  const pending = (await redis.xpending(options.stream, 'g', '-', '+', 10)) as [string, string, number, number][]
  assert.equal(pending.map(([pid, owner, , count]) => [pid, owner, count]), [[id, 'slow', 1]])
  slow.got[0]!.settle()
  await closedAfter(slow.sub, slow)
  await closedAfter(other.sub, other)
})

/**
 * A TCP proxy in front of Redis that holds back, from the first reply containing `marker` on, what Redis sends
 * on that connection, until `release()`: Redis has executed the command, the client has not seen the answer yet.
 */
async function replyHoldingProxy(redisPort: number, marker: string) {
  let held: { connection: ProxiedConnection; chunks: Buffer[] } | undefined
  let released = false
  const proxy = await startRedisProxy(redisPort, (chunk, connection) => {
    if (released) return true
    if (!held && chunk.includes(marker)) held = { connection, chunks: [] }
    if (held?.connection !== connection) return true
    held.chunks.push(chunk)
    return false
  })
  return {
    ...proxy,
    holding: () => held !== undefined && !released,
    release() {
      released = true
      for (const chunk of held?.chunks ?? []) held?.connection.send(chunk)
    },
  }
}

/** The CLIENT LIST line of the source's reader connection, when it is blocked in XREADGROUP. */
async function blockedReader(redis: Redis, consumer: string): Promise<string | undefined> {
  const lines = String(await redis.call('CLIENT', 'LIST')).split('\n')
  return lines.find((l) => l.includes(`name=hookstream:${consumer}:read `) && / flags=b /.test(l) && / cmd=xreadgroup /.test(l))
}

Source('a stop while Redis is down completes at once: no read can return, so none is waited for', async () => {
  const server = await startRedis()
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  try {
    const consumer = `down-${randomUUID()}`
    const { options } = setup(redis, { consumer, blockMs: 60_000, drainTimeoutMs: 20_000, onError: () => {} })
    const ac = new AbortController()
    let closed: unknown
    fromRedisStream({ ...options, signal: ac.signal, onClosed: (r) => { closed = r } }).subscribe()
    await eventually('the reader blocks in XREADGROUP', async () => (await blockedReader(redis, consumer)) !== undefined)
    await server.stop()
    const stoppedAt = Date.now()
    ac.abort()
    await eventually('closed', () => closed !== undefined, 25_000)
    assert.ok(Date.now() - stoppedAt < 3000, `closed ${Date.now() - stoppedAt} ms after the stop, not at the drain timeout (20 s)`)
    assert.equal(closed, { drained: true, unsettled: 0 })
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Source('a stop while Redis is down closes by the drain timeout, not drained, though its last acks cannot be sent; they stay pending', async () => {
  const server = await startRedis({ appendonly: true })
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  try {
    const { client, options } = setup(redis, { drainTimeoutMs: 500, onError: () => {} })
    await client.addMany(Array.from({ length: 3 }, () => makeEvent()))
    const ac = new AbortController()
    const got: StreamMessage[] = []
    let closed: { drained: boolean; unsettled: number } | undefined
    fromRedisStream({ ...options, signal: ac.signal, onClosed: (r) => { closed = r } }).subscribe((m) => got.push(m))
    await eventually('3 handed out', () => got.length === 3)
    await server.stop() // a clean shutdown: the AOF has the entries and their delivery
    await eventually('the client saw the connection go', () => redis.status !== 'ready')
    for (const m of got) m.settle() // their XACK waits for a connection
    ac.abort()
    await eventually('closed', () => closed !== undefined, 10_000)
    assert.equal(closed, { drained: false, unsettled: 0 })
    await server.start()
    await eventually('still pending, for redelivery', async () => {
      try { return (await client.info()).groups[0]?.pending === 3 } catch { return false }
    })
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Source('a stop while the reply of a blocked read is on its way hands out and acks its entries: nothing is left pending', async ({ redis }) => {
  const event = makeEvent()
  const proxy = await replyHoldingProxy(Number(new URL((await sharedRedis()).url).port), event.id)
  const viaProxy = new Redis(proxy.url)
  try {
    const consumer = `stop-${randomUUID()}`
    const { client, options } = setup(viaProxy, { consumer, blockMs: 30_000, drainTimeoutMs: 10_000 })
    const ac = new AbortController()
    const got: string[] = []
    let completed = false
    let closed: unknown
    fromRedisStream({ ...options, signal: ac.signal, onClosed: (r) => { closed = r } })
      .subscribe({ next: (m) => { got.push(m.event.id); m.settle() }, complete: () => { completed = true } })
    await eventually('the reader blocks in XREADGROUP', async () => (await blockedReader(redis, consumer)) !== undefined)
    await new StreamClient({ redis, stream: client.stream }).add(event)
    // Redis delivered the entry to the blocked read (it is pending for us); its reply has not reached the source
    await eventually('the reply is held', () => proxy.holding())
    assert.is((await client.info()).groups[0]!.pending, 1)
    ac.abort()
    proxy.release()
    await eventually('closed', () => closed !== undefined)
    assert.ok(completed)
    assert.equal(got, [event.id], 'the entry of the last read was handed out')
    assert.equal(closed, { drained: true, unsettled: 0 })
    assert.is((await client.info()).groups[0]!.pending, 0, 'nothing left pending')
  } finally {
    viaProxy.disconnect()
    await proxy.close()
  }
})

Source('a stop ends a blocked read at once (CLIENT UNBLOCK) instead of waiting for its BLOCK or cutting the connection', async ({ redis }) => {
  const consumer = `unblock-${randomUUID()}`
  const { client, options } = setup(redis, { consumer, blockMs: 60_000, drainTimeoutMs: 20_000 })
  await client.addMany(Array.from({ length: 3 }, () => makeEvent()))
  const ac = new AbortController()
  let closedAt = 0
  const got: StreamMessage[] = []
  fromRedisStream({ ...options, signal: ac.signal, onClosed: () => { closedAt = Date.now() } })
    .subscribe((m) => { got.push(m); m.settle() })
  await eventually('3 read, then the reader blocks', async () => got.length === 3 && (await blockedReader(redis, consumer)) !== undefined)
  const unblocks = async () => Number(/^cmdstat_client\|unblock:calls=(\d+)/m.exec(String(await redis.call('INFO', 'commandstats')))?.[1] ?? 0)
  const unblocksBefore = await unblocks()
  const stoppedAt = Date.now()
  ac.abort()
  await eventually('closed', () => closedAt > 0, 15_000)
  // well under the drain timeout (20 s), which is what a read nobody unblocks would hold the stop for
  assert.ok(closedAt - stoppedAt < 5000, `closed ${closedAt - stoppedAt} ms after the stop`)
  assert.is((await client.info()).groups[0]!.pending, 0)
  assert.ok((await unblocks()) > unblocksBefore, 'the read was ended by CLIENT UNBLOCK')
  assert.is(await blockedReader(redis, consumer), undefined)
})

Source('a stop while Redis is paused (CLIENT PAUSE WRITE) and the read is postponed ends within the drain timeout; Redis survives and nothing is pending', async () => {
  const server = await startRedis()
  const redis = new Redis(server.url)
  // fails at once instead of retrying if Redis went down (as a CLIENT UNBLOCK of a postponed read makes it crash)
  const control = new Redis(server.url, { maxRetriesPerRequest: 0, retryStrategy: () => null })
  control.on('error', () => {})
  try {
    const consumer = `paused-${randomUUID()}`
    const { client, options } = setup(redis, { consumer, blockMs: 100, drainTimeoutMs: 1500 })
    const ac = new AbortController()
    let closed: unknown
    let completed = false
    fromRedisStream({ ...options, signal: ac.signal, onClosed: (r) => { closed = r } })
      .subscribe({ next: (m) => m.settle(), complete: () => { completed = true } })
    await eventually('the reader blocks in XREADGROUP', async () => (await blockedReader(control, consumer)) !== undefined)
    // the pause ends by itself after 20 s even if this test fails half-way
    await control.call('CLIENT', 'PAUSE', 20_000, 'WRITE')
    // the next read (BLOCK 100) reaches Redis during the pause: postponed, so out of the timeout table
    await eventually('a read is postponed by the pause', async () => {
      const info = String(await control.call('INFO', 'clients'))
      return /blocked_clients:1\r?\n/.test(info) && /clients_in_timeout_table:0\r?\n/.test(info) && (await blockedReader(control, consumer)) !== undefined
    }, 5000)
    const stoppedAt = Date.now()
    ac.abort()
    await eventually('closed', () => closed !== undefined, 10_000)
    const tookMs = Date.now() - stoppedAt
    assert.ok(completed)
    assert.ok(tookMs >= 1400 && tookMs < 5000, `the stop waited for the postponed read up to the drain timeout, no longer (${tookMs} ms)`)
    assert.is(await control.ping(), 'PONG', 'Redis is still up: no CLIENT UNBLOCK reached the postponed read')
    await control.call('CLIENT', 'UNPAUSE')
    assert.is(await control.ping(), 'PONG')
    const group = (await new StreamClient({ redis: control, stream: client.stream }).info()).groups[0]
    assert.equal([group?.pending, group?.consumers.length], [0, 1])
    assert.is(Number(/blocked_clients:(\d+)/.exec(String(await control.call('INFO', 'clients')))?.[1]), 0)
  } finally {
    await control.call('CLIENT', 'UNPAUSE').catch(() => {})
    redis.disconnect()
    control.disconnect()
    await server.stop()
  }
})

Source('rejects bad options naming the option', () => {
  try {
    fromRedisStream({ redis: null as unknown as Redis, stream: 's', group: 'g', consumer: 'c', maxInFlight: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"maxInFlight" must be an integer of at least 1; got 0/)
  }
})

Source.run()
