import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { sharedRedis } from '../helpers/servers.js'
import { makeEvent } from '../helpers/events.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { queueStatsProvider } from '../../src/observability/queue-stats-provider.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { PartitionedStreamClient, StreamPartitions } from '../../src/sources/partitions.js'
import { parseExposition } from './exposition.js'

const QueueStats = suite<{ redis?: Redis }>('queueStatsProvider', {})
QueueStats.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
QueueStats.after((ctx) => { ctx.redis?.disconnect() })

QueueStats('depth is lag plus pending, the oldest pending age comes from its id, the DLQ from XLEN', async ({ redis }) => {
  const keys = streamKeys({ prefix: `test-${randomUUID()}:` })
  const stream = new StreamClient({ redis: redis!, stream: keys.stream })
  const provider = queueStatsProvider({ stream, group: keys.group, dlqStream: keys.dlqStream })
  assert.equal(await provider(), { depth: 0, lag: 0, oldestPendingAgeSeconds: 0, dlqDepth: 0 }, 'a missing stream reads as zeros')
  await stream.addMany(Array.from({ length: 7 }, () => makeEvent()))
  await stream.ensureGroup(keys.group, '0')
  await redis!.call('XREADGROUP', 'GROUP', keys.group, 'c1', 'COUNT', 3, 'STREAMS', keys.stream, '>')
  await redis!.call('XADD', keys.dlqStream, '*', 'event', '{}')
  await redis!.call('XADD', keys.dlqStream, '*', 'event', '{}')
  await new Promise((r) => setTimeout(r, 30))
  const stats = await provider()
  assert.equal([stats.depth, stats.lag, stats.dlqDepth], [7, 4, 2])
  assert.ok(stats.oldestPendingAgeSeconds >= 0.02 && stats.oldestPendingAgeSeconds < 10, String(stats.oldestPendingAgeSeconds))
})

QueueStats('with four partitions depth and lag are summed over every partition and the oldest pending age is the oldest of any', async ({ redis }) => {
  const partitions = new StreamPartitions({ redis: redis!, keys: streamKeys({ prefix: `test-${randomUUID()}:` }), count: 4 })
  const stream = new PartitionedStreamClient(partitions)
  await stream.addMany(Array.from({ length: 40 }, (_, i) => makeEvent({ repository: `acme/r${i}` })))
  await stream.ensureGroup(partitions.base.group, '0')
  const sizes = await Promise.all(partitions.streams.map(async (s) => Number(await redis!.xlen(s.stream))))
  assert.ok(sizes.filter((n) => n > 0).length >= 2, `events spread over partitions: ${sizes.join(', ')}`)
  // deliver 3 entries of the first non-empty partition only
  const first = partitions.streams[sizes.findIndex((n) => n > 0)]!
  await redis!.call('XREADGROUP', 'GROUP', partitions.base.group, 'c1', 'COUNT', 3, 'STREAMS', first.stream, '>')
  await new Promise((r) => setTimeout(r, 30))
  const stats = await queueStatsProvider({ stream: partitions.streams, group: partitions.base.group })()
  assert.equal([stats.depth, stats.lag], [40, 37])
  assert.ok(stats.oldestPendingAgeSeconds >= 0.02 && stats.oldestPendingAgeSeconds < 10, String(stats.oldestPendingAgeSeconds))
  // the base stream name alone (what the gauges read before) holds nothing
  assert.equal((await queueStatsProvider({ stream, group: partitions.base.group })()).depth, 0)
})

QueueStats('a dlqDepth function wins over the stream, and the gauges show the numbers at scrape time', async ({ redis }) => {
  const keys = streamKeys({ prefix: `test-${randomUUID()}:` })
  const stream = new StreamClient({ redis: redis!, stream: keys.stream })
  await stream.addMany(Array.from({ length: 2 }, () => makeEvent()))
  await stream.ensureGroup(keys.group, '0')
  const metrics = createMetrics({ defaultMetrics: false })
  try {
    metrics.setQueueStats(queueStatsProvider({ stream, group: keys.group, dlqStream: keys.dlqStream, dlqDepth: async () => 5 }))
    const s = parseExposition(await metrics.metricsText())
    assert.equal([s.get('webhook_queue_depth'), s.get('webhook_consumer_lag'), s.get('webhook_oldest_pending_age_seconds'),
      s.get('webhook_dlq_depth')], [2, 2, 0, 5])
  } finally {
    metrics.close()
  }
})

QueueStats('a group that does not exist yet reads as the whole stream waiting', async ({ redis }) => {
  const keys = streamKeys({ prefix: `test-${randomUUID()}:` })
  const stream = new StreamClient({ redis: redis!, stream: keys.stream })
  await stream.addMany(Array.from({ length: 3 }, () => makeEvent()))
  await stream.ensureGroup('another-group', '0')
  assert.equal(await queueStatsProvider({ stream, group: keys.group })(), { depth: 3, lag: 3, oldestPendingAgeSeconds: 0, dlqDepth: 0 })
})

QueueStats.run()
