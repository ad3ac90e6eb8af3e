import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { readRedisDurability } from '../../src/sources/redis-durability.js'
import { durabilityLosses } from '../../src/service/connect.js'
import { startRedis, type TestRedis } from '../helpers/servers.js'

const Durability = suite<{ servers: TestRedis[] }>('readRedisDurability', { servers: [] })
Durability.after(async ({ servers }) => { await Promise.all(servers.map((s) => s.stop())) })

async function modeOf(ctx: { servers: TestRedis[] }, options: Parameters<typeof startRedis>[0]) {
  const server = await startRedis(options)
  ctx.servers.push(server)
  const redis = new Redis(server.url)
  try {
    return await readRedisDurability(redis)
  } finally {
    redis.disconnect()
  }
}

Durability('reads aof, rdb and none from CONFIG GET; a refused CONFIG reads as unknown', async (ctx) => {
  assert.equal(await modeOf(ctx, { appendonly: true }), { mode: 'aof', appendfsync: 'everysec', save: '' })
  assert.equal(await modeOf(ctx, { args: ['--save', '60 1'] }), { mode: 'rdb', save: '60 1' })
  assert.equal(await modeOf(ctx, {}), { mode: 'none', save: '' })
  const refused = await modeOf(ctx, { args: ['--rename-command', 'CONFIG', ''] })
  assert.is(refused.mode, 'unknown')
  assert.match(refused.error ?? '', /unknown command|CONFIG/i)
})

Durability('names an eviction policy that can drop keys without a TTL (the stream) once Redis is full', async (ctx) => {
  const lru = await modeOf(ctx, { appendonly: true, args: ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'] })
  assert.equal([lru.mode, lru.evicts], ['aof', 'allkeys-lru'])
  const random = await modeOf(ctx, { args: ['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-random'] })
  assert.equal([random.mode, random.evicts], ['none', 'allkeys-random'])
  // noeviction (Redis's default) refuses writes when full, volatile-* evicts only keys with a TTL (never a
  // stream) and without maxmemory Redis never evicts: none of them can drop a queued event
  for (const args of [['--maxmemory', '64mb'], ['--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru'], ['--maxmemory-policy', 'allkeys-lfu']]) {
    assert.is((await modeOf(ctx, { appendonly: true, args })).evicts, undefined, args.join(' '))
  }
})

Durability('an append-only file that is never fsynced (appendfsync no) is a loss, with everysec as the fix; everysec and always are not', async (ctx) => {
  const never = await modeOf(ctx, { appendonly: true, args: ['--appendfsync', 'no'] })
  assert.equal([never.mode, never.appendfsync], ['aof', 'no'])
  const losses = durabilityLosses(never)
  assert.is(losses.length, 1)
  assert.match(`${losses[0]!.loss}; ${losses[0]!.fix}`, /appendfsync no.*power failure.*; set appendfsync everysec/)
  assert.equal(durabilityLosses(await modeOf(ctx, { appendonly: true, args: ['--appendfsync', 'always'] })), [])
  assert.equal(durabilityLosses(await modeOf(ctx, { appendonly: true })), [])
})

Durability.run()
