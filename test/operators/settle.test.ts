import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { from, lastValueFrom, map, mergeMap, tap, toArray } from 'rxjs'
import { toEnvelope, type Envelope } from '../../src/core/envelope.js'
import { checkpoint, CheckpointLedger } from '../../src/operators/checkpoint.js'
import { fromRedisStreamBatches } from '../../src/sources/from-redis-stream.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { PipelineError } from '../../src/core/errors.js'
import { settle } from '../../src/operators/settle.js'
import { streamKeys } from '../../src/sources/keys.js'
import { sharedRedis } from '../helpers/servers.js'
import { asOneBatch, envelope, uniquePrefix } from '../operators/helpers.js'
import { release } from '../helpers/release.js'

const Settle = suite<{ redis: Redis }>('settle', {} as { redis: Redis })
Settle.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Settle.after((ctx) => release(ctx, { redis: (r) => r.quit() }))

Settle('acks every decided envelope once; marks done only stored, forwarded and duplicate ones', async ({ redis }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const outcomes = ['stored', 'forwarded', 'duplicate', 'dead_lettered', 'parked'] as const
  const envs = outcomes.map((outcome) => ({ ...envelope(), outcome }))
  const settledBefore = envs.map((e) => e.settled())
  await lastValueFrom(from(envs).pipe(asOneBatch(settle({ redis, keys, ttlSeconds: 60 })), toArray()))
  assert.equal(settledBefore, [0, 0, 0, 0, 0])
  assert.equal(envs.map((e) => (e as unknown as { settled: () => number }).settled()), [1, 1, 1, 1, 1])
  const marks = await Promise.all(envs.map((e) => redis.get(`${keys.idempotencyPrefix}${e.message.event.tool_id}:${e.message.event.id}`)))
  assert.equal(marks, ['done', 'done', 'done', null, null])
  const ttl = await redis.ttl(`${keys.idempotencyPrefix}${envs[0]!.message.event.tool_id}:${envs[0]!.message.event.id}`)
  assert.ok(ttl > 50 && ttl <= 60, `done marker expires with the TTL (${ttl} s)`)
})

Settle('a failure that was not dead-lettered is never acked: it is nacked, so it comes back', async ({ redis }) => {
  const env = { ...envelope(), failure: new PipelineError('transient', 'X', 'x') }
  const unsettled: string[] = []
  await lastValueFrom(from([env]).pipe(asOneBatch(settle({ redis, onUnsettled: (e) => unsettled.push(e.message.event.id) })), toArray()))
  assert.equal([env.settled(), env.nacked()], [0, 1])
  assert.equal(unsettled, [env.message.event.id])
})

Settle('a message a custom operator drops is nacked after dropTimeoutMs, with a warning naming its last position; it comes back and settles', async ({ redis }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const stream = new StreamClient({ redis, stream: keys.stream })
  const events = [makeEvent({ id: 'keep-1' }), makeEvent({ id: 'drop-me' }), makeEvent({ id: 'keep-2' })]
  await stream.addMany(events)
  const ledger = new CheckpointLedger()
  const warnings: { last_position: string; event_id: string }[] = []
  const abort = new AbortController()
  const deliveries: string[] = []
  // a user's batch stage that loses "drop-me" on its first delivery: with maxInFlight 1, a leaked credit stalls everything
  const lossyFilter = map((envs: readonly Envelope[]) => envs.filter((env) => env.message.event.id !== 'drop-me' || env.message.deliveryCount > 1))
  const settled: string[] = []
  const sub = fromRedisStreamBatches({ redis, stream: keys.stream, group: keys.group, consumer: 'c1', maxInFlight: 1, batchSize: 1, blockMs: 50, claimIdleMs: 200, signal: abort.signal })
    .pipe(
      map((msgs) => msgs.map(toEnvelope)),
      tap((envs) => { for (const env of envs) deliveries.push(`${env.message.event.id}#${env.message.deliveryCount}`) }),
      checkpoint({ ledger, position: 'before lossyFilter' }),
      lossyFilter,
      checkpoint({ ledger, position: 'after lossyFilter' }),
      map((envs) => envs.map((env) => ({ ...env, outcome: 'stored' as const }))),
      settle({ redis, keys, ledger, dropTimeoutMs: 150, logger: { warn: (obj: object) => { warnings.push(obj as never) } } as never }),
      mergeMap((envs) => envs),
    ).subscribe((env) => settled.push(env.message.event.id))
  try {
    await eventually('all three settled', () => settled.length === 3, 15_000)
    assert.equal(settled, ['keep-1', 'drop-me', 'keep-2'])
    assert.equal(deliveries, ['keep-1#1', 'drop-me#1', 'drop-me#2', 'keep-2#1'])
    assert.equal(warnings.map((w) => [w.event_id, w.last_position]), [['drop-me', 'before lossyFilter']])
    assert.is(ledger.size, 0)
    await eventually('nothing pending', async () => (await stream.info()).groups.find((g) => g.name === keys.group)?.pending === 0)
  } finally {
    abort.abort()
    sub.unsubscribe()
  }
})

Settle.run()
