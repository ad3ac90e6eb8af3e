import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { DestinationRateLimiter } from '../../src/sinks/destination-rate-limit.js'
import { sharedRedis } from '../helpers/servers.js'

const Limit = suite<{ a?: Redis; b?: Redis }>('destination rate limit', {})
Limit.before(async (ctx) => {
  const { url } = await sharedRedis()
  ctx.a = new Redis(url)
  ctx.b = new Redis(url)
})
Limit.after((ctx) => { ctx.a?.disconnect(); ctx.b?.disconnect() })

Limit('two limiters on one Redis share the bucket: the burst, then one token per 1/rate', async ({ a, b }) => {
  const prefix = `t-${randomUUID()}:`
  const one = new DestinationRateLimiter({ redis: a!, prefix })
  const two = new DestinationRateLimiter({ redis: b!, prefix })
  // 2 tokens/s: the five takes may spread over up to 500 ms on a busy machine before a token comes back
  const limit = { perSecond: 2, burst: 4 }
  const waits = [await one.take('d', limit), await two.take('d', limit), await one.take('d', limit), await two.take('d', limit)]
  assert.equal(waits, [0, 0, 0, 0])
  const fifth = await two.take('d', limit)
  assert.ok(fifth > 0 && fifth <= 500, `the fifth waits for the next token (≤ 500 ms); got ${fifth}`)
  assert.is(await one.take('other', limit), 0, 'another destination has its own bucket')
  await new Promise((r) => setTimeout(r, fifth + 20))
  assert.is(await one.take('d', limit), 0, 'a token came back')
})

Limit('a receiver\'s Retry-After empties the bucket for every process until it passes', async ({ a, b }) => {
  const prefix = `t-${randomUUID()}:`
  const one = new DestinationRateLimiter({ redis: a!, prefix })
  const two = new DestinationRateLimiter({ redis: b!, prefix })
  const limit = { perSecond: 100, burst: 50 }
  // a 1.5 s Retry-After: the take right after the block may come up to 1 s late on a busy machine
  await one.block('d', limit, 1500)
  const wait = await two.take('d', limit)
  assert.ok(wait > 500 && wait <= 1500, `waits out the Retry-After; got ${wait}`)
  await new Promise((r) => setTimeout(r, wait + 30))
  assert.is(await two.take('d', limit), 0)
})

Limit('Redis failing is an infrastructure REDIS_UNAVAILABLE, so the pipeline holds the delivery', async () => {
  const broken = new DestinationRateLimiter({ redis: { call: async () => { throw new Error('connection closed') } }, prefix: 'x:' })
  try {
    await broken.take('d', { perSecond: 1, burst: 1 })
    assert.unreachable()
  } catch (err) {
    assert.equal([(err as { kind: string }).kind, (err as { code: string }).code], ['infrastructure', 'REDIS_UNAVAILABLE'])
  }
})

Limit.run()
