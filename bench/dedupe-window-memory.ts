/**
 * Redis memory per delivery in the dedupe window at several sustained rates, with the quarter-window levels
 * (`DeliverySeenLevels`) and with the fixed 4,096 hashes per quarter-window of the versions before them.
 *
 * Ingest records a delivery as one field of a hash of the "delivery seen" set (see `deliverySeen`). Redis keeps a
 * hash of up to `hash-max-listpack-entries` fields (512 by default) as one listpack and a larger one as a
 * hashtable, which costs about three times as much per field. With 4,096 hashes per quarter a hash holds
 * rate × WORKER_IDEMPOTENCY_TTL / 4 / 4,096 deliveries (~10,500 at 2,000/s for a day); a level spreads the quarter
 * over 4,096 × 2^level hashes, chosen from the quarter before. For each rate this asks the real resolver which
 * level follows a quarter filled at that rate, then fills hashes of both sizes on a Redis of its own with the
 * fields, values and expiry ingest writes (a 12-byte field, an 8-character value, EXPIREAT) and prints
 * used_memory per delivery. (A 10-minute soak stays in one quarter-window, so it cannot show this.)
 *
 *   npx tsx bench/dedupe-window-memory.ts
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { DELIVERY_SEEN_SHARDS, deliverySeen, deliverySeenLevelKey, deliverySeenSlot, streamKeys } from '../src/sources/keys.js'
import { DeliverySeenLevels } from '../src/sources/delivery-seen-levels.js'
import { startRedis } from '../test/helpers/servers.js'

const WINDOW = 86_400
const server = await startRedis()
const redis = new Redis(server.url)
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])

// used_memory per delivery of hashes holding `perHash` deliveries each (~400,000 deliveries in all, at least 4 hashes)
async function bytesPerDelivery(perHash: number): Promise<{ bytes: number; encoding: string }> {
  await redis.flushall()
  const seen = deliverySeen(streamKeys(), 'gh-main', randomUUID(), WINDOW)
  const slot = seen.buckets[0].slice(0, seen.buckets[0].lastIndexOf(':'))
  const hashes = Math.max(4, Math.round(400_000 / perHash))
  const before = await usedMemory()
  for (let h = 0; h < hashes; h++) {
    const batch = redis.pipeline()
    for (let i = 0; i < perHash; i++) batch.hset(`${slot}:${h}`, randomBytes(seen.field.length), randomBytes(6).toString('base64url'))
    batch.expireat(`${slot}:${h}`, seen.expireAtSeconds)
    await batch.exec()
  }
  return { bytes: ((await usedMemory()) - before) / (hashes * perHash), encoding: String(await redis.object('ENCODING', `${slot}:0`)) }
}

// the level the resolver gives the quarter after one in which each level-0 hash got `perHash` deliveries
async function levelAfter(perHash: number): Promise<number> {
  await redis.flushall()
  const keys = streamKeys({ prefix: 'bench:' })
  const slot = deliverySeenSlot(WINDOW)
  const batch = redis.pipeline()
  // a quarter written by processes with levels: its own level (0) recorded
  batch.set(deliverySeenLevelKey(keys, slot), '0')
  for (let shard = 0; shard < 16; shard++) for (let i = 0; i < perHash; i++) batch.hset(`${keys.deliveryPrefix}${slot}:${shard}`, randomBytes(12), 'x')
  await batch.exec()
  return (await new DeliverySeenLevels(WINDOW).of(redis, keys, (slot + 1.5) * (WINDOW / 4) * 1000))[0]!
}

try {
  const [, listpackMax] = (await redis.call('CONFIG', 'GET', 'hash-max-listpack-entries')) as [string, string]
  console.log(`Redis ${/redis_version:(\S+)/.exec(await redis.info('server'))?.[1]}, hash-max-listpack-entries ${listpackMax}; a 24 h window (WORKER_IDEMPOTENCY_TTL=86400), one partition`)
  console.log('| sustained rate | 4,096 hashes per quarter: deliveries per hash, encoding, B/delivery | with levels: level, deliveries per hash, encoding, B/delivery | window at 1.25 × 24 h: before → with levels |')
  console.log('|--:|---|---|---|')
  for (const rate of [1, 20, 100, 500, 2_000, 10_000]) {
    const perHash0 = Math.max(1, Math.round((rate * WINDOW) / 4 / DELIVERY_SEEN_SHARDS))
    const level = await levelAfter(perHash0)
    const perHash = Math.max(1, Math.round(perHash0 / 2 ** level))
    const fixed = await bytesPerDelivery(perHash0)
    const leveled = level === 0 ? fixed : await bytesPerDelivery(perHash)
    const window = (b: number) => `${((rate * WINDOW * 1.25 * b) / 1e9).toFixed(rate < 100 ? 2 : 1)} GB`
    console.log(`| ${rate.toLocaleString('en')}/s | ${perHash0.toLocaleString('en')}, ${fixed.encoding}, **${fixed.bytes.toFixed(1)}** | ${level}, ${perHash.toLocaleString('en')}, ${leveled.encoding}, **${leveled.bytes.toFixed(1)}** | ${window(fixed.bytes)} → ${window(leveled.bytes)} |`)
  }
} finally {
  redis.disconnect()
  await server.stop()
}
