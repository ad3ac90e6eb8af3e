import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createDb, type Db } from '../../src/db/database.js'
import { DeliveryLog, type DeliveryAttemptRecord } from '../../src/db/delivery-log.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { eventually } from '../helpers/events.js'
import { freePort, sharedPostgres } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const Log = suite<{ handle: Db; down?: Db }>('delivery log', {} as { handle: Db })
Log.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
})
Log.after.each((ctx) => release(ctx, { handle: (h) => h.close(), down: (h) => h.close() }))

const attempt = (i: number, extra: Partial<DeliveryAttemptRecord> = {}): DeliveryAttemptRecord => ({
  toolId: 'gh', eventId: `e-${i}`, destinationId: 'gh', attempt: 1, startedAt: new Date(), durationMs: 12.6, httpStatus: 200, ...extra,
})
const rows = async (h: Db) => Number((await h.db.selectFrom('webhook_deliveries').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n)

Log('recorded attempts are written in batches by size and by time, never while record() runs', async ({ handle }) => {
  const log = new DeliveryLog({ db: handle.db, maxBatch: 100, flushMs: 200 })
  try {
    for (let i = 0; i < 250; i++) log.record(attempt(i))
    assert.ok(log.queued > 0, 'record only queues')
    await eventually('two full batches written by size', async () => (await rows(handle)) >= 200, 5000)
    await eventually('the rest written by time', async () => (await rows(handle)) === 250, 5000)
    // the rows can be visible to another connection before the INSERT's own answer is read: join the write first
    await log.flush()
    assert.is(log.queued, 0)
  } finally {
    await log.close()
  }
  const row = await handle.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', 'e-7').executeTakeFirstOrThrow()
  assert.equal([row.tool_id, row.destination_id, row.attempt, row.duration_ms, row.http_status, row.error_class, row.next_attempt_at], ['gh', 'gh', 1, 13, 200, null, null])
})

Log('a response body is cut to 1 KiB and a NUL it holds is replaced, so PostgreSQL takes it', async ({ handle }) => {
  const log = new DeliveryLog({ db: handle.db })
  log.record(attempt(1, { httpStatus: 500, errorClass: 'transient', errorCode: 'DESTINATION_5XX', responseBody: `a\u0000${'x'.repeat(5000)}` }))
  await log.close()
  const row = await handle.db.selectFrom('webhook_deliveries').selectAll().executeTakeFirstOrThrow()
  assert.is(row.response_body!.length, 1024)
  assert.is(row.response_body!.slice(0, 2), 'a\uFFFD')
  assert.equal([row.error_class, row.error_code], ['transient', 'DESTINATION_5XX'])
})

Log('while PostgreSQL is down the queue stays within maxQueue, dropping the oldest and counting them', async (ctx) => {
  ctx.down = await createDb({ url: `postgres://nobody@127.0.0.1:${await freePort()}/none`, poolSize: 1 })
  let dropped = 0
  const errors: string[] = []
  const log = new DeliveryLog({ db: ctx.down.db, maxBatch: 10, flushMs: 20, maxQueue: 50, onDropped: (n) => { dropped += n }, onError: (e) => errors.push(e.message) })
  for (let i = 0; i < 500; i++) log.record(attempt(i))
  await log.flush()
  assert.ok(log.queued <= 50, `at most maxQueue queued; got ${log.queued}`)
  assert.is(dropped + log.queued, 500, 'every attempt is either not written yet or counted as dropped')
  assert.ok(errors.length > 0 && errors.every((m) => m.includes('webhook_deliveries')), errors[0])
  await log.close()
  assert.is(dropped, 500, 'closing while PostgreSQL is down drops (and counts) what is left')
})

Log.run()
