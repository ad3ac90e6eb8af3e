import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis, type Cluster } from 'ioredis'
import { fromRedisStream } from '../../src/sources/from-redis-stream.js'
import { streamKeys, trimLeaseKey } from '../../src/sources/keys.js'
import { PartitionedStreamClient, StreamPartitions } from '../../src/sources/partitions.js'
import { entriesOfReadReply, StreamClient } from '../../src/sources/stream-client.js'
import { startStreamTrimmer } from '../../src/sources/stream-trimmer.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js'

interface Ctx { cluster: TestRedisCluster; redis: Cluster; masters: Redis[] }
const OnCluster = suite<Ctx>('stream sources on a 3-master Redis Cluster', {} as Ctx)
OnCluster.before(async (ctx) => {
  ctx.cluster = await startRedisCluster({ masters: 3 })
  ctx.redis = await ctx.cluster.client()
  ctx.masters = ctx.cluster.servers.map((s) => new Redis(s.url))
})
OnCluster.after(async (ctx) => {
  ctx.redis?.disconnect()
  for (const m of ctx.masters ?? []) m.disconnect()
  await ctx.cluster?.stop()
})

/** How many of `consumer`'s reader connections are blocked in XREADGROUP on `master`. */
async function blockedReaders(master: Redis, consumer: string): Promise<number> {
  return String(await master.call('CLIENT', 'LIST')).split('\n')
    .filter((l) => l.includes(`name=hookstream:${consumer}:read `) && / flags=b /.test(l) && / cmd=xreadgroup /.test(l)).length
}
const unblockCalls = async (master: Redis) =>
  Number(/^cmdstat_client\|unblock:calls=(\d+)/m.exec(String(await master.call('INFO', 'commandstats')))?.[1] ?? 0)

OnCluster('a stop ends the blocked read of every partition\'s source on its own master at once; nothing is left pending', async ({ cluster, redis, masters }) => {
  const keys = streamKeys({ prefix: `unblock-${randomUUID()}:` })
  const partitions = new StreamPartitions({ redis, keys, count: 6 })
  const onMaster = await Promise.all(partitions.keys.map(async (k) => cluster.nodes.indexOf(await cluster.masterOf(k.stream))))
  assert.is(new Set(onMaster).size, 3, `6 partitions on all 3 masters (${onMaster.join(',')})`)
  await new PartitionedStreamClient(partitions).addMany(Array.from({ length: 60 }, (_, i) => makeEvent({ repository: `acme/r${i}` })))
  const consumer = `cl-${randomUUID()}`
  const ac = new AbortController()
  const closedAt: number[] = []
  let handedOut = 0
  for (const k of partitions.keys) {
    fromRedisStream({ redis, stream: k.stream, group: k.group, consumer, blockMs: 60_000, drainTimeoutMs: 20_000,
      signal: ac.signal, onClosed: () => { closedAt.push(Date.now()) } })
      .subscribe((m) => { handedOut += 1; m.settle() })
  }
  const expected = [0, 1, 2].map((m) => onMaster.filter((n) => n === m).length)
  await eventually('every source read its 10 and blocks on its master', async () => handedOut === 60
    && (await Promise.all(masters.map((m) => blockedReaders(m, consumer)))).every((n, i) => n === expected[i]), 15_000)
  const before = await Promise.all(masters.map(unblockCalls))
  const stoppedAt = Date.now()
  ac.abort()
  await eventually('all 6 sources closed', () => closedAt.length === 6, 25_000)
  // a read that nobody unblocked would hold its source until the drain timeout (20 s)
  assert.ok(Math.max(...closedAt) - stoppedAt < 5000, `closed within ${Math.max(...closedAt) - stoppedAt} ms`)
  const after = await Promise.all(masters.map(unblockCalls))
  assert.equal(after.map((n, i) => n - before[i]! >= expected[i]!), [true, true, true], `CLIENT UNBLOCK per master: ${after.map((n, i) => n - before[i]!)}`)
  assert.equal(await Promise.all(masters.map((m) => blockedReaders(m, consumer))), [0, 0, 0])
  const info = await new PartitionedStreamClient(partitions).info()
  assert.equal([info.groups[0]?.pending, info.length], [0, 60])
})

OnCluster('trimSafe runs one script per partition, each on its own master, and keeps what each group still needs', async ({ redis }) => {
  const keys = streamKeys({ prefix: `trim-${randomUUID()}:` })
  const partitions = new StreamPartitions({ redis, keys, count: 6 })
  const stream = new PartitionedStreamClient(partitions)
  await stream.addMany(Array.from({ length: 60 }, (_, i) => makeEvent({ repository: `acme/r${i}` })))
  await stream.ensureGroup(keys.group)
  let acked = 0
  const kept: number[] = []
  for (const k of partitions.keys) {
    const s = new StreamClient({ redis, stream: k.stream })
    const length = Number(await redis.xlen(k.stream))
    // each partition: the first half read, of which all but the last entry acked
    const read = entriesOfReadReply(await redis.call('XREADGROUP', 'GROUP', k.group, 'c1', 'COUNT', Math.ceil(length / 2), 'STREAMS', k.stream, '>')).map(([id]) => id)
    acked += await s.ack(k.group, read.slice(0, -1))
    kept.push(length - (read.length - 1))
  }
  assert.is(await stream.trimSafe(), acked)
  assert.equal(await Promise.all(partitions.keys.map(async (k) => Number(await redis.xlen(k.stream)))), kept)
  assert.is(await stream.trimSafe(), 0)
})

OnCluster('two workers\' trimmers of each partition take turns by the partition\'s lease, which lives in the partition\'s slot', async ({ cluster, redis }) => {
  const keys = streamKeys({ prefix: `lease-${randomUUID()}:` })
  const partitions = new StreamPartitions({ redis, keys, count: 3 })
  const second = await cluster.client()
  const trims = partitions.keys.map(() => [0, 0])
  const trimmers = partitions.keys.flatMap((k, p) => [redis, second].map((client, w) => startStreamTrimmer({
    // a lease far longer than the test: a holder stalled past the default 3 × 50 ms (a busy box) would rightly lose
    // it to the other worker, which is not what this test is about
    stream: new StreamClient({ redis: client, stream: k.stream }), intervalMs: 50, lease: { ttlMs: 60_000 }, onTrimmed: () => { trims[p]![w]! += 1 },
  })))
  try {
    await eventually('every partition trimmed a few times', () => trims.every(([a, b]) => a! + b! >= 5), 5000)
    // per partition, one of the two workers did every trim
    assert.equal(trims.map(([a, b]) => Math.min(a!, b!)), [0, 0, 0], `trims per partition and worker: ${JSON.stringify(trims)}`)
    for (const k of partitions.keys) {
      assert.is(await cluster.masterOf(trimLeaseKey(k.stream)), await cluster.masterOf(k.stream))
      assert.ok(Number(await redis.pttl(trimLeaseKey(k.stream))) > 0)
    }
  } finally {
    await Promise.all(trimmers.map((t) => t.close()))
    second.disconnect()
  }
})

OnCluster.run()
