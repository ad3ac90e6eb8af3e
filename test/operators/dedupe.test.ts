import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { EMPTY, from, lastValueFrom, toArray } from 'rxjs'
import { PipelineError } from '../../src/core/errors.js'
import { dedupe } from '../../src/operators/dedupe.js'
import { DONE_MARKER } from '../../src/sources/keys.js'
import { streamKeys } from '../../src/sources/keys.js'
import { sharedRedis, startRedis } from '../helpers/servers.js'
import { envelope, uniquePrefix, asOneBatch } from './helpers.js'
import { eventually } from '../helpers/events.js'
import { release } from '../helpers/release.js'

const Dedupe = suite<{ redis: Redis }>('dedupe', {} as { redis: Redis })
Dedupe.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Dedupe.after((ctx) => release(ctx, { redis: (r) => r.quit() }))

Dedupe('an empty source stays empty', async ({ redis }) => {
  assert.equal(await lastValueFrom(EMPTY.pipe(asOneBatch(dedupe({ redis })), toArray())), [])
})

Dedupe('ids marked done become duplicates; new ids are claimed briefly and pass on', async ({ redis }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const envs = [envelope(), envelope(), envelope()]
  await redis.set(`${keys.idempotencyPrefix}${envs[1]!.message.event.tool_id}:${envs[1]!.message.event.id}`, DONE_MARKER)
  const watcher = new Redis((await sharedRedis()).url)
  const monitor = await watcher.monitor()
  let sets = 0
  const echoes = new Set<string>()
  monitor.on('monitor', (_t: string, args: string[]) => {
    if (args[0]?.toUpperCase() === 'SET' && args[1]?.startsWith(keys.idempotencyPrefix)) sets += 1
    if (args[0]?.toUpperCase() === 'ECHO' && args[1]) echoes.add(args[1])
  })
  // MONITOR shows commands in the order Redis ran them: once a marker sent after a step shows up, every
  // command of that step has been seen (no sleeps)
  const marker = async (name: string) => {
    await redis.echo(`${keys.idempotencyPrefix}${name}`)
    await eventually(`MONITOR saw ${name}`, () => echoes.has(`${keys.idempotencyPrefix}${name}`))
  }
  await marker('start')
  let pipelines = 0
  const counting = { pipeline: () => { pipelines += 1; return redis.pipeline() } }
  const out = await lastValueFrom(from(envs).pipe(asOneBatch(dedupe({ redis: counting, keys, claimTtlSeconds: 5 })), toArray()))
  await marker('end')
  monitor.disconnect()
  watcher.disconnect()
  assert.equal(out.map((e) => e.outcome), [undefined, 'duplicate', undefined])
  assert.is(sets, 3, 'one SET NX GET per event')
  assert.is(pipelines, 1, 'all three in one pipeline')
  const claim = await redis.get(`${keys.idempotencyPrefix}${envs[0]!.message.event.tool_id}:${envs[0]!.message.event.id}`)
  assert.match(claim!, /^claim:/)
  const ttl = await redis.pttl(`${keys.idempotencyPrefix}${envs[0]!.message.event.tool_id}:${envs[0]!.message.event.id}`)
  assert.ok(ttl > 0 && ttl <= 5000, `claim expires (${ttl} ms)`)
  assert.is(envs.reduce((n, e) => n + e.settled(), 0), 0, 'dedupe itself settles nothing')
})

Dedupe('a failed envelope passes through without a Redis key', async ({ redis }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const failed = { ...envelope(), failure: new PipelineError('permanent', 'X', 'x') }
  const [out] = await lastValueFrom(from([failed]).pipe(asOneBatch(dedupe({ redis, keys })), toArray()))
  assert.is(out, failed)
  assert.is(await redis.exists(`${keys.idempotencyPrefix}${failed.message.event.tool_id}:${failed.message.event.id}`), 0)
})

Dedupe('while Redis is down the batch is held, then checked once Redis is back', async () => {
  const server = await startRedis()
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    await server.stop()
    const holds: boolean[] = []
    const result = lastValueFrom(from([envelope()]).pipe(asOneBatch(dedupe({ redis, hold: { onHold: (h) => holds.push(h), initialDelayMs: 50 } })), toArray()))
    await eventually('the batch is held', () => holds.length > 0)
    assert.equal(holds, [true])
    await server.start()
    const out = await result
    assert.is(out.length, 1)
    assert.is(out[0]!.failure, undefined)
    assert.equal(holds, [true, false])
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Dedupe.run()
