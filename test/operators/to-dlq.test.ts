import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { EMPTY, from, lastValueFrom, toArray } from 'rxjs'
import { PipelineError } from '../../src/core/errors.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { toDLQ } from '../../src/operators/to-dlq.js'
import { streamKeys } from '../../src/sources/keys.js'
import { sharedPostgres, sharedRedis, startRedis } from '../helpers/servers.js'
import { envelope, uniquePrefix } from './helpers.js'
import { release } from '../helpers/release.js'

interface Ctx { redis: Redis; db: Db }
const DLQ = suite<Ctx>('toDLQ', {} as Ctx)
DLQ.before(async (ctx) => {
  ctx.redis = new Redis((await sharedRedis()).url)
  ctx.db = await createDb({ url: await (await sharedPostgres()).createDatabase() })
  await migrateToLatest(ctx.db.db)
})
DLQ.after((ctx) => release(ctx, { redis: (r) => r.disconnect(), db: (d) => d.close() }))

const failed = (code = 'DESTINATION_4XX', retry_count = 0) =>
  ({ ...envelope({ retry_count }), failure: new PipelineError('permanent', code, `failed with ${code}`) })

DLQ('an empty source writes nothing', async ({ redis, db }) => {
  assert.equal(await lastValueFrom(EMPTY.pipe(toDLQ({ db: db.db, redis }), toArray())), [])
})

DLQ('failed envelopes go to the DLQ stream and table with an audit row; others pass untouched', async ({ redis, db }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const bad = failed()
  const good = envelope()
  const out = await lastValueFrom(from([bad, good]).pipe(toDLQ({ db: db.db, redis, keys }), toArray()))
  assert.equal(out.map((e) => e.outcome), ['dead_lettered', undefined])
  const [[, fields]] = (await redis.xrange(keys.dlqStream, '-', '+')) as [[string, string[]]]
  const f = Object.fromEntries(fields.reduce<string[][]>((acc, v, i) => (i % 2 ? acc : [...acc, [v, fields[i + 1]!]]), []))
  assert.equal([f.error_code, f.error_class, f.stream_id], ['DESTINATION_4XX', 'permanent', bad.message.streamId])
  const row = await db.db.selectFrom('webhook_dlq').selectAll().where('event_id', '=', bad.message.event.id).executeTakeFirstOrThrow()
  assert.equal([row.status, row.error_code, row.retry_count], ['pending', 'DESTINATION_4XX', 0])
  assert.ok(row.next_retry_at && row.next_retry_at.getTime() > Date.now(), 'next_retry_at is in the future')
  const audit = await db.db.selectFrom('webhook_audit_log').select('action').where('event_id', '=', bad.message.event.id).execute()
  assert.equal(audit.map((a) => a.action), ['dead_lettered'])
  assert.is(bad.settled() + good.settled(), 0, 'toDLQ marks the outcome; settle acks')
})

DLQ('after the last DLQ round the entry is failed, waiting for a person', async ({ redis, db }) => {
  const env = failed('DESTINATION_5XX', 3)
  await lastValueFrom(from([env]).pipe(toDLQ({ db: db.db, redis, policy: { delaysMs: [10], maxRounds: 3 } }), toArray()))
  const row = await db.db.selectFrom('webhook_dlq').selectAll().where('event_id', '=', env.message.event.id).executeTakeFirstOrThrow()
  assert.equal([row.status, row.next_retry_at], ['failed', null])
})

DLQ('a payload PostgreSQL cannot hold (\\u0000) still reaches both DLQ copies', async ({ redis, db }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const env = { ...envelope({ payload: { text: 'a\u0000b' } }), failure: new PipelineError('permanent', 'STORE_REJECTED', 'x') }
  const [out] = await lastValueFrom(from([env]).pipe(toDLQ({ db: db.db, redis, keys }), toArray()))
  assert.is(out!.outcome, 'dead_lettered')
  assert.is(await redis.xlen(keys.dlqStream), 1)
  const row = await db.db.selectFrom('webhook_dlq').selectAll().where('event_id', '=', env.message.event.id).executeTakeFirstOrThrow()
  assert.equal((row.event as { payload: unknown }).payload, { text: 'a\ufffdb' })
})

DLQ('when neither DLQ write works the envelope is held, not settled, until one does', async ({ db }) => {
  const server = await startRedis()
  const redis = new Redis(server.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false })
  redis.on('error', () => {})
  const env = failed()
  const holds: boolean[] = []
  const broken = { ...db.db, transaction: () => { throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) } } as unknown as typeof db.db
  try {
    await server.stop()
    let done = false
    const result = lastValueFrom(from([env]).pipe(toDLQ({ db: broken, redis, hold: { onHold: (h) => holds.push(h), initialDelayMs: 50 } }), toArray()))
      .then((r) => { done = true; return r })
    await new Promise((r) => setTimeout(r, 400))
    assert.is(done, false)
    assert.equal(holds, [true])
    await server.start()
    await new Promise((r) => setTimeout(r, 300))
    const [out] = await result
    assert.is(out!.outcome, 'dead_lettered')
    const check = new Redis(server.url)
    assert.is(await check.xlen('webhook_events_dlq'), 1)
    check.disconnect()
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

DLQ.run()
