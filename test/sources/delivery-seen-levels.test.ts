import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { DELIVERY_SEEN_SHARDS, deliverySeen, deliverySeenLevelKey, deliverySeenSlot, streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { DELIVERY_SEEN_PER_HASH, DeliverySeenLevels } from '../../src/sources/delivery-seen-levels.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { createProducer } from '../../src/sources/create-producer.js'
import { startIngest } from '../http/providers/ingest-harness.js'
import { sharedRedis } from '../helpers/servers.js'
import { makeEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'

interface Ctx { redis: Redis; keys: StreamKeys }
const Levels = suite<Ctx>('the "delivery seen" set sizes each quarter-window from the one before', {} as Ctx)
Levels.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Levels.before.each((ctx) => { ctx.keys = streamKeys({ prefix: `lv-${randomUUID()}:` }) })
Levels.after((ctx) => release(ctx, { redis: (r) => r.quit() }))

const WINDOW = 86_400
const QUARTER_MS = (WINDOW / 4) * 1000
// the middle of a quarter-window, so a test never straddles two
const at = (slot: number) => slot * QUARTER_MS + QUARTER_MS / 2
const NOW_SLOT = deliverySeenSlot(WINDOW)

// `fields` deliveries in each of the quarter's first 16 shards (the ones a level is sized from), as processes with
// levels write them (the quarter's level recorded; 0 unless already set), or else as versions before levels did
async function fill(redis: Redis, keys: StreamKeys, slot: number, fields: number, { recorded = true } = {}): Promise<void> {
  const batch = redis.pipeline()
  if (recorded) batch.set(deliverySeenLevelKey(keys, slot), '0', 'NX')
  for (let shard = 0; shard < 16; shard++) {
    for (let i = 0; i < fields; i++) batch.hset(`${keys.deliveryPrefix}${slot}:${shard}`, randomBytes(12), 'x')
  }
  await batch.exec()
}

Levels('level 0 is the layout before levels; a level L spreads a quarter over 4,096 × 2^L hashes', () => {
  const keys = streamKeys()
  for (let i = 0; i < 200; i++) {
    const id = `d-${i}`
    const plain = deliverySeen(keys, 'gh', id, WINDOW, at(100))
    assert.equal(deliverySeen(keys, 'gh', id, WINDOW, at(100), [0, 0, 0, 0, 0]), plain)
    const leveled = deliverySeen(keys, 'gh', id, WINDOW, at(100), [3, 2, 0, 8, 1])
    assert.equal(leveled.field, plain.field, 'the field does not depend on the level')
    leveled.buckets.forEach((bucket, back) => {
      const [, slot, shard] = /:(\d+):(\d+)$/.exec(bucket)!.map(Number)
      const level = [3, 2, 0, 8, 1][back]!
      assert.is(slot, 100 - back)
      assert.ok(shard! < DELIVERY_SEEN_SHARDS * 2 ** level, `${bucket} within level ${level}`)
      // the level-0 shard stays the low part, so a quarter's first 16 shards are the same at every level
      assert.is(shard! % DELIVERY_SEEN_SHARDS, Number(/:(\d+)$/.exec(plain.buckets[back]!)![1]))
    })
  }
  // the deliveries do spread over a level's extra hashes
  const shards = new Set(Array.from({ length: 400 }, (_, i) => deliverySeen(keys, 'gh', `e-${i}`, WINDOW, at(100), [2, 0, 0, 0, 0]).buckets[0]))
  assert.ok([...shards].some((b) => Number(/:(\d+)$/.exec(b)![1]) >= DELIVERY_SEEN_SHARDS * 2), 'some in the third quarter of the shards')
})

Levels('a window that is not a whole number of seconds, or levels out of range, are refused with what was expected', () => {
  const keys = streamKeys()
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new DeliverySeenLevels(bad), (err: Error) => err instanceof RangeError &&
      /DeliverySeenLevels: the "delivery seen" window must be a whole number of seconds of at least 1/.test(err.message), String(bad))
    assert.throws(() => deliverySeen(keys, 'gh', 'd-1', bad), /deliverySeen: the "delivery seen" window/, String(bad))
  }
  for (const bad of [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 9], [0, -1], [0.5]]) {
    assert.throws(() => deliverySeen(keys, 'gh', 'd-1', WINDOW, at(100), bad), /"levels" must be up to 5 integers from 0 to 8/, JSON.stringify(bad))
  }
  assert.is(deliverySeen(keys, 'gh', 'd-1', 1, at(100)).buckets.length, 5, 'a one-second window is allowed')
})

Levels('a quarter after an empty or lightly used one is level 0; the level is recorded until its hashes expire', async ({ redis, keys }) => {
  const levels = new DeliverySeenLevels(WINDOW)
  assert.equal(await levels.of(redis, keys, at(NOW_SLOT)), [0, 0, 0, 0, 0])
  await fill(redis, keys, NOW_SLOT, DELIVERY_SEEN_PER_HASH)
  assert.equal(await new DeliverySeenLevels(WINDOW).of(redis, keys, at(NOW_SLOT + 1)), [0, 0, 0, 0, 0], `${DELIVERY_SEEN_PER_HASH} per hash fit level 0`)
  assert.is(await redis.get(deliverySeenLevelKey(keys, NOW_SLOT + 1)), '0')
  const ttl = await redis.ttl(deliverySeenLevelKey(keys, NOW_SLOT + 1))
  // expires with the quarter's hashes: 5 quarters after its start, at most 1.25 windows away
  assert.ok(ttl > WINDOW && ttl <= WINDOW * 1.5, `ttl ${ttl}`)
})

Levels('a fuller quarter raises the next level so each hash holds at most 256, and a quieter one lowers it', async ({ redis, keys }) => {
  const s = NOW_SLOT
  await fill(redis, keys, s, 1_000)
  // 1,000 per hash at level 0: level 2 makes it 250
  assert.equal((await new DeliverySeenLevels(WINDOW).of(redis, keys, at(s + 1)))[0], 2)
  // that quarter at level 2 with 300 in its hashes is 1,200 at level 0: level 3 (150 per hash)
  await fill(redis, keys, s + 1, 300)
  assert.equal(await new DeliverySeenLevels(WINDOW).of(redis, keys, at(s + 2)), [3, 2, 0, 0, 0])
  // 10 per hash at level 3 is 80 at level 0: back to 0
  await fill(redis, keys, s + 2, 10)
  assert.equal(await new DeliverySeenLevels(WINDOW).of(redis, keys, at(s + 3)), [0, 3, 2, 0, 0])
  // never past level 8, however full
  const other = streamKeys({ prefix: `lv-${randomUUID()}:` })
  await redis.set(deliverySeenLevelKey(other, s), '8')
  await fill(redis, other, s, 600)
  assert.equal((await new DeliverySeenLevels(WINDOW).of(redis, other, at(s + 1)))[0], 8)
  // a level edited by hand to something no process writes reads as 0 everywhere
  for (const bad of ['banana', '99', '-1']) {
    const edited = streamKeys({ prefix: `lv-${randomUUID()}:` })
    await redis.set(deliverySeenLevelKey(edited, s), bad)
    assert.is((await new DeliverySeenLevels(WINDOW).of(redis, edited, at(s)))[0], 0, bad)
  }
})

Levels('every process gets the level the first one set, whatever the quarter before holds by then', async ({ redis, keys }) => {
  await fill(redis, keys, NOW_SLOT, 600)
  const first = new DeliverySeenLevels(WINDOW)
  // concurrent requests of one process share one resolve
  const [a, b] = await Promise.all([first.of(redis, keys, at(NOW_SLOT + 1)), first.of(redis, keys, at(NOW_SLOT + 1) + 1)])
  assert.is(a, b)
  assert.is(a[0], 2)
  await fill(redis, keys, NOW_SLOT, 2_000)
  assert.equal(await new DeliverySeenLevels(WINDOW).of(redis, keys, at(NOW_SLOT + 1)), a, 'a second process')
})

Levels('a delivery is found again in the quarters after it, across a change of level', async ({ redis, keys }) => {
  const stream = new StreamClient({ redis, stream: keys.stream })
  const levels = new DeliverySeenLevels(WINDOW)
  const send = async (id: string, nowMs: number) =>
    stream.addIfFirst(deliverySeen(keys, 'gh', id, WINDOW, nowMs, await levels.of(redis, keys, nowMs)), makeEvent({ id, tool_id: 'gh' }))
  const s = NOW_SLOT
  assert.type(await send('first', at(s)), 'string')
  // the quarter fills up: the next one is level 2
  await fill(redis, keys, s, 1_000)
  assert.type(await send('second', at(s + 1)), 'string')
  assert.is((await levels.of(redis, keys, at(s + 1)))[0], 2)
  // both re-sends are duplicates, one quarter and four quarters later, and a new delivery is not
  for (const later of [s + 1, s + 2, s + 4]) {
    assert.is(await send('first', at(later)), null, `first at quarter +${later - s}`)
    assert.is(await send('second', at(later)), null, `second at quarter +${later - s}`)
  }
  assert.type(await send('third', at(s + 2)), 'string')
  // the level-2 quarter's record is where the lookup reads it
  const second = deliverySeen(keys, 'gh', 'second', WINDOW, at(s + 1), await levels.of(redis, keys, at(s + 1)))
  assert.ok(await redis.hexists(second.buckets[0], second.field), second.buckets[0])
  assert.is(await redis.xlen(keys.stream), 3)
})

Levels('after an upgrade, quarters written by versions before levels stay level 0, and so does the quarter after one', async ({ redis, keys }) => {
  const stream = new StreamClient({ redis, stream: keys.stream })
  const s = NOW_SLOT
  // the version before levels filled quarter s and recorded a delivery in s + 1, all at the one layout it knew
  await fill(redis, keys, s, 1_000, { recorded: false })
  assert.type(await stream.addIfFirst(deliverySeen(keys, 'gh', 'old', WINDOW, at(s + 1)), makeEvent({ id: 'old', tool_id: 'gh' })), 'string')
  const levels = new DeliverySeenLevels(WINDOW)
  const send = async (id: string, nowMs: number) =>
    stream.addIfFirst(deliverySeen(keys, 'gh', id, WINDOW, nowMs, await levels.of(redis, keys, nowMs)), makeEvent({ id, tool_id: 'gh' }))
  // upgraded in quarter s + 1: not sized from s, which has no level, since old processes may be writing s + 1 too
  assert.equal(await levels.of(redis, keys, at(s + 1)), [0, 0, 0, 0, 0])
  assert.is(await send('old', at(s + 1)), null)
  // the quarter after is sized from s + 1, and still finds what the old version recorded
  await fill(redis, keys, s + 1, 1_000)
  assert.equal(await levels.of(redis, keys, at(s + 2)), [2, 0, 0, 0, 0])
  assert.is(await send('old', at(s + 2)), null)
  assert.is(await redis.xlen(keys.stream), 1)
})

// a delivery id whose hash at `level` is not its level-0 hash, so writing to the wrong one shows
function idApartAt(keys: StreamKeys, toolId: string, level: number): string {
  for (;;) {
    const id = randomUUID()
    if (deliverySeen(keys, toolId, id, WINDOW).buckets[0] !== deliverySeen(keys, toolId, id, WINDOW, Date.now(), [level]).buckets[0]) return id
  }
}

// the current quarter and the next are set to `level`, as another process would have (the next in case the
// quarter turns during the test)
async function presetLevel(redis: Redis, keys: StreamKeys, level: number): Promise<void> {
  for (const slot of [deliverySeenSlot(WINDOW), deliverySeenSlot(WINDOW) + 1]) await redis.set(deliverySeenLevelKey(keys, slot), String(level), 'EX', 600)
}

Levels('ingest records and looks up a delivery in the hashes of the level Redis holds for the quarter', async () => {
  const h = await startIngest((await sharedRedis()).url)
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 's' })
    await presetLevel(h.redis, h.keys, 3)
    const id = idApartAt(h.keys, 'gh', 3)
    const body = '{"zen":"x"}'
    const headers = { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': id,
      'x-hub-signature-256': `sha256=${createHmac('sha256', 's').update(body).digest('hex')}` }
    assert.is((await h.post('gh', body, headers)).json.duplicate, undefined)
    assert.is((await h.post('gh', body, headers)).json.duplicate, true)
    const leveled = deliverySeen(h.keys, 'gh', id, WINDOW, Date.now(), [3])
    assert.is(await h.redis.hexists(leveled.buckets[0], leveled.field), 1, leveled.buckets[0])
    assert.is(await h.redis.hexists(deliverySeen(h.keys, 'gh', id, WINDOW).buckets[0], leveled.field), 0, 'not in the level-0 hash')
    assert.is(await h.length(), 1)
  } finally {
    await h.close()
  }
})

Levels('createProducer records and looks up a delivery in the hashes of the level Redis holds for the quarter', async ({ redis, keys }) => {
  await presetLevel(redis, keys, 5)
  const producer = createProducer({ redis, keys })
  const id = idApartAt(keys, 'billing', 5)
  const event = { id, event_type: 'billing.invoice.paid', tool_id: 'billing', payload: {} }
  assert.is((await producer.send(event)).duplicate, false)
  assert.is((await producer.send(event)).duplicate, true)
  const leveled = deliverySeen(keys, 'billing', id, WINDOW, Date.now(), [5])
  assert.is(await redis.hexists(leveled.buckets[0], leveled.field), 1, leveled.buckets[0])
  assert.is(await redis.xlen(keys.stream), 1)
})

Levels.run()
