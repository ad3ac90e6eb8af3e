import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { from, lastValueFrom, toArray } from 'rxjs'
import { PipelineError } from '../../src/core/errors.js'
import { settle } from '../../src/sinks/settle.js'
import { streamKeys } from '../../src/sources/keys.js'
import { sharedRedis } from '../helpers/servers.js'
import { envelope, uniquePrefix } from '../operators/helpers.js'

const Settle = suite<{ redis: Redis }>('settle', {} as { redis: Redis })
Settle.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Settle.after(async (ctx) => { await ctx.redis.quit() })

Settle('acks every decided envelope once; marks done only stored, forwarded and duplicate ones', async ({ redis }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const outcomes = ['stored', 'forwarded', 'duplicate', 'dead_lettered', 'parked'] as const
  const envs = outcomes.map((outcome) => ({ ...envelope(), outcome }))
  const settledBefore = envs.map((e) => e.settled())
  await lastValueFrom(from(envs).pipe(settle({ redis, keys, ttlSeconds: 60 }), toArray()))
  assert.equal(settledBefore, [0, 0, 0, 0, 0])
  assert.equal(envs.map((e) => (e as unknown as { settled: () => number }).settled()), [1, 1, 1, 1, 1])
  const marks = await Promise.all(envs.map((e) => redis.get(`${keys.idempotencyPrefix}${e.message.event.tool_id}:${e.message.event.id}`)))
  assert.equal(marks, ['done', 'done', 'done', null, null])
  const ttl = await redis.ttl(`${keys.idempotencyPrefix}${envs[0]!.message.event.tool_id}:${envs[0]!.message.event.id}`)
  assert.ok(ttl > 50 && ttl <= 60, `done marker expires with the TTL (${ttl} s)`)
})

Settle('a failure that was not dead-lettered is never acked: it stays pending and comes back', async ({ redis }) => {
  const env = { ...envelope(), failure: new PipelineError('transient', 'X', 'x') }
  const unsettled: string[] = []
  await lastValueFrom(from([env]).pipe(settle({ redis, onUnsettled: (e) => unsettled.push(e.message.event.id) }), toArray()))
  assert.is(env.settled(), 0)
  assert.equal(unsettled, [env.message.event.id])
})

Settle.run()
