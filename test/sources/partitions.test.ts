import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { DEFAULT_KEYS, streamKeys } from '../../src/sources/keys.js'
import { fnv1a32, parsePartitionKey, partitionFor, partitionKeys, PartitionedStreamClient, StreamPartitions } from '../../src/sources/partitions.js'
import { sharedRedis } from '../helpers/servers.js'

const event = (tenant_id: string, repository: string) => ({ tenant_id, repository, tool_id: 'gh', event_type: 'webhook.github.push' })
const Partitions = suite('partitions')

Partitions('fnv1a32 matches the published FNV-1a test vectors', () => {
  assert.is(fnv1a32(''), 0x811c9dc5)
  assert.is(fnv1a32('a'), 0xe40c292c)
  assert.is(fnv1a32('foobar'), 0xbf9cf968)
})

Partitions('one partition keeps today\'s names unchanged', () => {
  assert.is(partitionKeys(DEFAULT_KEYS, 0, 1), DEFAULT_KEYS)
  assert.is(partitionFor(event('a', 'b'), 1), 0)
  assert.is(new StreamPartitions({ redis: {} as never, keys: DEFAULT_KEYS }).route(event('x', 'y')).stream.stream, 'webhook_events')
})

Partitions('partitioned names carry the hash tag on every per-partition key; DLQ and group are shared', () => {
  const keys = partitionKeys(streamKeys({ prefix: 'p:' }), 3, 8)
  assert.is(keys.stream, 'p:webhook_events:{3}')
  assert.is(keys.idempotencyPrefix, 'p:webhook:idempotency:{3}:')
  assert.is(keys.deliveryPrefix, 'p:webhook:delivery:{3}:')
  assert.is(keys.delayed, 'p:webhook:delayed:{3}')
  assert.is(keys.dlqStream, 'p:webhook_events_dlq')
  assert.is(keys.group, 'webhook_workers')
})

Partitions('the same key always maps to the same partition, and 2,000 keys spread over all 8', () => {
  const counts = new Array(8).fill(0) as number[]
  for (let i = 0; i < 2000; i++) {
    const p = partitionFor(event('acme', `repo-${i}`), 8)
    assert.is(partitionFor(event('acme', `repo-${i}`), 8), p)
    counts[p] = (counts[p] ?? 0) + 1
  }
  assert.ok(counts.every((n) => n > 150 && n < 350), `spread: ${counts.join(',')}`)
})

Partitions('the partition key decides which fields count', () => {
  const byTenant = ['tenant_id'] as const
  const ps = new Set<number>()
  for (let i = 0; i < 100; i++) ps.add(partitionFor(event('acme', `repo-${i}`), 8, byTenant))
  assert.is(ps.size, 1)
})

Partitions('parsePartitionKey accepts short names and rejects unknown ones naming the option', () => {
  assert.equal(parsePartitionKey('tenant, repository'), ['tenant_id', 'repository'])
  assert.equal(parsePartitionKey('tool,event_type'), ['tool_id', 'event_type'])
  try { parsePartitionKey('tenant,branch', 'STREAM_PARTITION_KEY'); assert.unreachable() } catch (err) {
    assert.match((err as Error).message, /STREAM_PARTITION_KEY names unknown field "branch"/)
  }
  try { parsePartitionKey(' , ', 'STREAM_PARTITION_KEY'); assert.unreachable() } catch (err) {
    assert.match((err as Error).message, /at least one/)
  }
})

Partitions('bad counts and indexes are refused naming the option', () => {
  try { new StreamPartitions({ redis: {} as never, keys: DEFAULT_KEYS, count: 0 }); assert.unreachable() } catch (err) {
    assert.match((err as Error).message, /"count" must be an integer from 1/)
  }
  try { partitionKeys(DEFAULT_KEYS, 8, 8); assert.unreachable() } catch (err) { assert.match((err as Error).message, /"index"/) }
})

Partitions('PartitionedStreamClient routes adds to partitions and sums their info', async () => {
  const redis = new Redis((await sharedRedis()).url)
  try {
    const partitions = new StreamPartitions({ redis, keys: streamKeys({ prefix: `part-${randomUUID()}:` }), count: 4 })
    const stream = new PartitionedStreamClient(partitions)
    assert.is(await stream.ensureGroup('g'), true)
    const events = Array.from({ length: 40 }, (_, i) => ({
      id: `e${i}`, event_type: 'webhook.github.push', repository: `acme/r${i}`, tenant_id: 'acme', tool_id: 'gh',
      payload: { i }, timestamp: new Date().toISOString(), retry_count: 0,
    }))
    const ids = await stream.addMany(events)
    assert.is(ids.length, 40)
    assert.ok(ids.every((id) => /^\d+-\d+$/.test(id)))
    const lengths = await Promise.all(partitions.streams.map(async (s) => Number(await redis.call('XLEN', s.stream))))
    assert.is(lengths.reduce((a, b) => a + b, 0), 40)
    assert.ok(lengths.filter((n) => n > 0).length > 1, `spread: ${lengths.join(',')}`)
    const own = partitions.route(events[5]!).stream
    const entry = (await redis.call('XRANGE', own.stream, ids[5]!, ids[5]!)) as [string, string[]][]
    assert.equal(entry[0]![1].slice(0, 2), ['id', 'e5'])
    const info = await stream.info()
    assert.is(info.length, 40)
    assert.equal(info.groups.map((g) => [g.name, g.pending, g.lag]), [['g', 0, 40]])
    try { await stream.ack(); assert.unreachable() } catch (err) { assert.match((err as Error).message, /entry ids belong to one partition/) }
  } finally { redis.disconnect() }
})

Partitions.run()
