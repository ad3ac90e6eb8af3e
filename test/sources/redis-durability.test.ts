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

Durability('names an eviction policy once maxmemory is set: allkeys-* can drop the stream, volatile-* the duplicate checks', async (ctx) => {
  const lru = await modeOf(ctx, { appendonly: true, args: ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'] })
  assert.equal([lru.mode, lru.evicts], ['aof', 'allkeys-lru'])
  const random = await modeOf(ctx, { args: ['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-random'] })
  assert.equal([random.mode, random.evicts], ['none', 'allkeys-random'])
  // volatile-* evicts only keys with a TTL: never the stream, but hookstream's duplicate checks
  const volatile = await modeOf(ctx, { appendonly: true, args: ['--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru'] })
  assert.is(volatile.evicts, 'volatile-lru')
  assert.match(durabilityLosses(volatile).map((l) => l.loss).join(), /evicts keys with a TTL .*forwarded twice/)
  assert.match(durabilityLosses(lru).map((l) => `${l.loss}; ${l.fix}`).join(), /evicts any key .*stream itself.*; set maxmemory-policy noeviction/)
  // noeviction (Redis's default) refuses writes when full, and without maxmemory Redis never evicts
  for (const args of [['--maxmemory', '64mb'], ['--maxmemory-policy', 'allkeys-lfu']]) {
    const durability = await modeOf(ctx, { appendonly: true, args })
    assert.is(durability.evicts, undefined, args.join(' '))
    assert.equal(durabilityLosses(durability), [], args.join(' '))
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
