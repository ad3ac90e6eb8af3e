import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { rateLimit } from '../../src/http/rate-limit.js'
import { sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

interface Ctx { a: Redis; b: Redis; prefix: string }
const Limit = suite<Ctx>('rateLimit (token bucket in Redis)', {} as Ctx)

Limit.before(async (ctx) => {
  const { url } = await sharedRedis()
  ctx.a = new Redis(url)
  ctx.b = new Redis(url) // a second "ingest process": its own connection to the same Redis
})
Limit.before.each((ctx) => { ctx.prefix = `rl-${randomUUID()}:` })
Limit.after((ctx) => release(ctx, { a: (r) => r.disconnect(), b: (r) => r.disconnect() }))

Limit('a full bucket lets `burst` requests through, then refuses with a Retry-After of about one token', async ({ a, prefix }) => {
  const results = []
  // 0.5 tokens/s: the six calls may spread over a second on a busy machine and still earn less than a token
  for (let i = 0; i < 6; i++) results.push(await rateLimit(a, `${prefix}tool`, { ratePerSecond: 0.5, burst: 5 }))
  assert.equal(results.map((r) => r.allowed), [true, true, true, true, true, false])
  assert.equal(results.slice(0, 5).map((r) => r.remaining), [4, 3, 2, 1, 0])
  const refused = results[5]!
  assert.ok(refused.retryAfterMs > 1000 && refused.retryAfterMs <= 2000, `retryAfterMs ${refused.retryAfterMs} ≈ 2000 ms (1 token at 0.5/s)`)
})

Limit('two processes share one bucket: 10 concurrent requests from each, burst 8 → exactly 8 allowed', async ({ a, b, prefix }) => {
  const key = `${prefix}shared`
  const calls = Array.from({ length: 20 }, (_, i) => rateLimit(i % 2 ? a : b, key, { ratePerSecond: 0.5, burst: 8 }))
  const results = await Promise.all(calls)
  assert.is(results.filter((r) => r.allowed).length, 8)
  assert.ok(results.filter((r) => !r.allowed).every((r) => r.retryAfterMs > 1000 && r.retryAfterMs <= 2000))
})

/** Moves the bucket's last refill `ms` back on Redis's clock (the one the script reads), leaving it empty. */
async function emptyBucketAgo(redis: Redis, key: string, ms: number): Promise<void> {
  const [seconds, micros] = await redis.time()
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  await redis.hset(key, 'tokens', '0', 'ts', String(now - ms))
}

Limit('the bucket refills over time at ratePerSecond, capped at burst', async ({ a, b, prefix }) => {
  const key = `${prefix}refill`
  // 0.5 tokens/s: the few ms between the calls below add far less than a token, however busy the box is
  const opts = { ratePerSecond: 0.5, burst: 4 }
  for (let i = 0; i < 4; i++) assert.ok((await rateLimit(a, key, opts)).allowed)
  assert.not.ok((await rateLimit(b, key, opts)).allowed)
  await emptyBucketAgo(a, key, 4800) // 0.5/s × 4.8 s = 2.4 tokens
  const after = [await rateLimit(b, key, opts), await rateLimit(a, key, opts), await rateLimit(b, key, opts)]
  assert.equal(after.map((r) => r.allowed), [true, true, false])
  await emptyBucketAgo(a, key, 60_000) // 30 tokens' worth: capped at 4
  let allowed = 0
  for (let i = 0; i < 8; i++) if ((await rateLimit(a, key, opts)).allowed) allowed++
  assert.is(allowed, 4)
})

Limit('tools have separate buckets, and an idle bucket expires from Redis', async ({ a, prefix }) => {
  const opts = { ratePerSecond: 10, burst: 1 }
  assert.ok((await rateLimit(a, `${prefix}t1`, opts)).allowed)
  assert.not.ok((await rateLimit(a, `${prefix}t1`, opts)).allowed)
  assert.ok((await rateLimit(a, `${prefix}t2`, opts)).allowed)
  const ttl = Number(await a.pttl(`${prefix}t1`))
  assert.ok(ttl > 0 && ttl <= 1100, `ttl ${ttl} ms`)
})

Limit('works right after SCRIPT FLUSH (the script is sent again)', async ({ a, prefix }) => {
  await a.call('SCRIPT', 'FLUSH')
  const r = await rateLimit(a, `${prefix}flush`, { ratePerSecond: 1, burst: 1 })
  assert.ok(r.allowed)
})

Limit('bad options fail naming the option', async ({ a, prefix }) => {
  for (const [opts, name] of [[{ ratePerSecond: 0 }, 'ratePerSecond'], [{ ratePerSecond: 1, burst: 0 }, 'burst'],
    [{ ratePerSecond: 1, burst: 2, cost: 3 }, 'cost']] as const) {
    try {
      await rateLimit(a, `${prefix}x`, opts)
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, new RegExp(`"${name}"`))
    }
  }
})

Limit('a Redis that is gone makes rateLimit reject (ingest answers 503), not hang', async () => {
  const dead = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  dead.on('error', () => {})
  const started = Date.now()
  const outcome = await rateLimit(dead, 'k', { ratePerSecond: 1 }).then((r) => r, (err: unknown) => err)
  assert.instance(outcome, Error, `rateLimit resolved instead of rejecting: ${JSON.stringify(outcome)}`)
  assert.ok(Date.now() - started < 3000)
  dead.disconnect()
})

Limit.run()
