import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { createProducer } from '../../src/sources/create-producer.js'
import { sharedPostgres, startRedis, type TestRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'
import { nonStreamKeys } from '../helpers/redis-memory.js'

interface Ctx { redis: TestRedis; w: PipelineWorld }
const Memory = suite<Ctx>('the dedupe window in Redis', {} as Ctx)

// a Redis of its own, so used_memory counts only what these tests write
Memory.before(async (ctx) => { ctx.redis = await startRedis() })
Memory.after((ctx) => release(ctx, { redis: (r) => r.stop() }))
Memory.before.each(async (ctx) => {
  ctx.w = await pipelineWorld(ctx.redis.url, await (await sharedPostgres()).createDatabase())
  ctx.w.addTool({ id: 'gh-main', provider: 'github', processing_mode: 'store' })
})
Memory.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

const usedMemory = async (w: PipelineWorld) => Number(/used_memory:(\d+)/.exec(await w.redis.info('memory'))?.[1])

// every key but the streams (and the DLQ stream), with the bytes MEMORY USAGE counts for them
async function windowKeys(w: PipelineWorld): Promise<{ keys: number; bytes: number }> {
  const keys = await nonStreamKeys(w.redis)
  return { keys: keys.length, bytes: keys.reduce((sum, k) => sum + k.bytes, 0) }
}

Memory('50,000 provider deliveries cost at most one key and 80 bytes of Redis each in the dedupe window', async ({ w }) => {
  const producer = createProducer({ redis: w.redis, keys: w.keys })
  const count = 50_000
  const streamBefore = Number(await w.redis.call('MEMORY', 'USAGE', w.keys.stream, 'SAMPLES', '0') ?? 0)
  const before = await usedMemory(w)
  for (let i = 0; i < count; i += 1000) {
    const sent = await producer.sendMany(Array.from({ length: 1000 }, () => ({
      id: randomUUID(), event_type: 'webhook.github.push', tool_id: 'gh-main', payload: { n: i } })))
    assert.is(sent.filter((s) => s.duplicate).length, 0)
  }
  // what the deliveries cost: all memory added, less the stream entries themselves (trimmed once processed)
  const streamBytes = Number(await w.redis.call('MEMORY', 'USAGE', w.keys.stream, 'SAMPLES', '0')) - streamBefore
  const perEvent = (await usedMemory(w) - before - streamBytes) / count
  const window = await windowKeys(w)
  assert.ok(window.keys <= count, `${window.keys} keys for ${count} deliveries`)
  assert.ok(perEvent <= 80, `${perEvent.toFixed(1)} bytes per delivery (used_memory); MEMORY USAGE of the window's keys: ${(window.bytes / count).toFixed(1)}`)
  // a re-send of one of them is still answered as a duplicate
  const again = await producer.send({ id: 'same-1', event_type: 'webhook.github.push', tool_id: 'gh-main', payload: {} })
  const resent = await producer.send({ id: 'same-1', event_type: 'webhook.github.push', tool_id: 'gh-main', payload: {} })
  assert.equal([again.duplicate, resent.duplicate], [false, true])
  console.log(`    dedupe window: ${perEvent.toFixed(1)} B/delivery (used_memory), ${window.keys} keys for ${count} deliveries`)
})

Memory('the webhook pipeline stores events without leaving a Redis key per event behind', async ({ w }) => {
  await w.enqueue(300, { tool_id: 'gh-main' })
  const before = await windowKeys(w)
  w.start()
  await eventually('300 settled', () => w.settled.length === 300)
  await eventually('acked', async () => (await w.pending()) === 0)
  assert.is(await w.rowCount(), 300)
  const after = await windowKeys(w)
  assert.is(after.keys - before.keys, 0, 'keys added by the worker')
})

Memory.run()
