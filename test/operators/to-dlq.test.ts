import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { EMPTY, from, lastValueFrom, toArray, type Subscription } from 'rxjs'
import { PipelineError } from '../../src/core/errors.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { toDLQ } from '../../src/operators/to-dlq.js'
import { streamKeys } from '../../src/sources/keys.js'
import { sharedPostgres, sharedRedis, startPostgres } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { envelope, uniquePrefix, asOneBatch } from './helpers.js'
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
  assert.equal(await lastValueFrom(EMPTY.pipe(asOneBatch(toDLQ({ db: db.db, redis })), toArray())), [])
})

DLQ('failed envelopes go to the DLQ stream and table with an audit row; others pass untouched', async ({ redis, db }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const bad = failed()
  const good = envelope()
  const out = await lastValueFrom(from([bad, good]).pipe(asOneBatch(toDLQ({ db: db.db, redis, keys })), toArray()))
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
  await lastValueFrom(from([env]).pipe(asOneBatch(toDLQ({ db: db.db, redis, policy: { delaysMs: [10], maxRounds: 3 } })), toArray()))
  const row = await db.db.selectFrom('webhook_dlq').selectAll().where('event_id', '=', env.message.event.id).executeTakeFirstOrThrow()
  assert.equal([row.status, row.next_retry_at], ['failed', null])
})

DLQ('a late failure of an older copy of an event (another destination, a redelivery) never lowers its open row\'s retry count', async ({ redis, db }) => {
  const policy = { delaysMs: [10], maxRounds: 3 }
  // round 2 of the event failed: its open row counts 2 rounds
  const second = failed('DESTINATION_4XX', 2)
  await lastValueFrom(from([second]).pipe(asOneBatch(toDLQ({ db: db.db, redis, policy })), toArray()))
  // then a copy from before any re-queue (retry_count 0) fails too, e.g. a slow destination's delivery giving up
  const { id, tool_id: toolId } = second.message.event
  const older = { ...envelope({ id, tool_id: toolId, retry_count: 0 }), failure: new PipelineError('transient', 'DESTINATION_5XX', 'late') }
  await lastValueFrom(from([older]).pipe(asOneBatch(toDLQ({ db: db.db, redis, policy })), toArray()))
  const rows = await db.db.selectFrom('webhook_dlq').select(['retry_count', 'error_code']).where('event_id', '=', id).execute()
  assert.equal(rows, [{ retry_count: 2, error_code: 'DESTINATION_5XX' }], 'one open row, its rounds kept, the newest error shown')
})

DLQ('an event whose id or tool id has a NUL (a library producer\'s entry) is dead-lettered and listed, not held forever', async ({ redis, db }) => {
  const unknownTool = (overrides: { id?: string; tool_id?: string }) => {
    const env = envelope(overrides)
    return { ...env, failure: new PipelineError('permanent', 'UNKNOWN_TOOL', `tool "${env.message.event.tool_id}" of event ${env.message.event.id} is not configured`) }
  }
  const badId = unknownTool({ id: `nul\u0000id-${Date.now()}` })
  const badTool = unknownTool({ tool_id: `nul\u0000tool-${Date.now()}` })
  let sub: Subscription | undefined
  const settled = await new Promise<readonly { outcome?: string }[] | 'held'>((resolve, reject) => {
    sub = from([badId, badTool]).pipe(asOneBatch(toDLQ({ db: db.db, redis,
      hold: { onHold: (held) => { if (held) resolve('held') }, initialDelayMs: 20, maxDelayMs: 50 } })), toArray())
      .subscribe({ next: resolve, error: reject })
  }).finally(() => sub?.unsubscribe())
  assert.ok(settled !== 'held', 'toDLQ held the batch (PostgreSQL refused the rows) instead of dead-lettering it')
  assert.equal((settled as { outcome?: string }[]).map((e) => e.outcome), ['dead_lettered', 'dead_lettered'])
  const rows = await db.db.selectFrom('webhook_dlq').select(['event_id', 'tool_id', 'event_format', 'event_raw'])
    .where('error_code', '=', 'UNKNOWN_TOOL').where((eb) => eb.or([eb('event_id', 'like', '%nul%'), eb('tool_id', 'like', '%nul%')])).execute()
  assert.is(rows.length, 2, 'both are listed')
  for (const [row, env] of rows.map((r) => [r, r.event_id.includes('id-') ? badId : badTool] as const)) {
    assert.ok(!row.event_id.includes('\u0000') && !row.tool_id.includes('\u0000'))
    assert.is(row.event_format, 'raw', 'the entry is kept byte for byte')
    assert.is(Buffer.from(row.event_raw!).toString('utf8'), env.message.fields.event)
  }
})

DLQ('a payload jsonb cannot hold (\\u0000, a lone surrogate) is kept raw, byte for byte, beside its innocent neighbours', async ({ redis, db }) => {
  const keys = streamKeys({ prefix: uniquePrefix() })
  const rejected = (payload: unknown) => ({ ...envelope({ payload }), failure: new PipelineError('permanent', 'STORE_REJECTED', 'x') })
  const nul = rejected({ text: 'a\u0000b' })
  const surrogate = rejected({ zen: 'lone \ud800 surrogate' })
  const innocent = failed()
  const out = await lastValueFrom(from([nul, surrogate, innocent]).pipe(asOneBatch(toDLQ({ db: db.db, redis, keys })), toArray()))
  assert.equal(out.map((e) => e.outcome), ['dead_lettered', 'dead_lettered', 'dead_lettered'])
  assert.is(await redis.xlen(keys.dlqStream), 3)
  const rows = await db.db.selectFrom('webhook_dlq').selectAll()
    .where('event_id', 'in', [nul, surrogate, innocent].map((e) => e.message.event.id)).execute()
  const byId = new Map(rows.map((r) => [r.event_id, r]))
  for (const env of [nul, surrogate]) {
    const row = byId.get(env.message.event.id)!
    assert.equal([row.event_format, row.event], ['raw', null])
    assert.is(Buffer.from(row.event_raw!).toString('utf8'), env.message.fields.event)
  }
  assert.is(byId.get(innocent.message.event.id)!.event_format, 'jsonb')
  assert.is(rows.length, 3)
})

DLQ('while PostgreSQL is down the envelope is held, though the DLQ stream took it, and settled once its row is durable', async ({ redis }) => {
  const pg = await startPostgres()
  const own = await createDb({ url: await pg.createDatabase(), connectTimeoutMs: 500 })
  try {
    await migrateToLatest(own.db)
    const keys = streamKeys({ prefix: uniquePrefix() })
    const env = failed()
    const holds: boolean[] = []
    await pg.stop()
    let done = false
    const result = lastValueFrom(from([env]).pipe(asOneBatch(toDLQ({ db: own.db, redis, keys, hold: { onHold: (h) => holds.push(h), initialDelayMs: 50, maxDelayMs: 200 } })), toArray()))
      .then((r) => { done = true; return r })
    await eventually('held', () => holds.length === 1)
    assert.ok(await redis.xlen(keys.dlqStream) >= 1, 'the DLQ stream took it')
    assert.is(done, false)
    assert.is(env.settled(), 0)
    await pg.start()
    const [out] = await result
    assert.is(out!.outcome, 'dead_lettered')
    assert.equal(holds, [true, false])
    const rows = await own.db.selectFrom('webhook_dlq').select('event_id').execute()
    assert.equal(rows.map((r) => r.event_id), [env.message.event.id])
  } finally {
    await own.close()
    await pg.stop()
  }
})

DLQ.run()
