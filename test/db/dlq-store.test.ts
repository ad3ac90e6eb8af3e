import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import { createDb, type Db } from '../../src/db/database.js'
import { parseDlqFilter } from '../../src/db/dlq-filter.js'
import { DlqStore, resolveRequeued } from '../../src/db/dlq-store.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { seedDlq, streamEvents } from './dlq-seed.js'
import { freePort, sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

interface Ctx { handle: Db; redis: Redis; keys: StreamKeys; stream: StreamClient; dlq: DlqStore }
const Dlq = suite<Ctx>('DlqStore', {} as Ctx)

Dlq.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  ctx.keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  ctx.stream = new StreamClient({ redis: ctx.redis, stream: ctx.keys.stream })
  ctx.dlq = new DlqStore({ db: ctx.handle.db, stream: ctx.stream })
})
Dlq.after.each((ctx) => release(ctx, { handle: (h) => h.close(), redis: (r) => r.disconnect() }))

async function audit(handle: Db, action: string): Promise<number> {
  const r = await handle.db.selectFrom('webhook_audit_log').select((eb) => eb.fn.countAll<number>().as('n')).where('action', '=', action).executeTakeFirstOrThrow()
  return Number(r.n)
}

Dlq('lists 25 rows in pages of 10 newest first, with filters on status, tool, event type and time', async ({ handle, dlq }) => {
  await seedDlq(handle, Array.from({ length: 25 }, (_, i) => ({
    event: { tool_id: i % 5 === 0 ? 'gl' : 'gh', event_type: i % 2 ? 'webhook.github.push' : 'webhook.github.issues' },
    status: i < 20 ? 'pending' as const : 'failed' as const,
  })))
  const ids: number[] = []
  let cursor: string | undefined
  const sizes: number[] = []
  for (;;) {
    const page = await dlq.list({}, { limit: 10, ...(cursor ? { cursor } : {}) })
    sizes.push(page.entries.length)
    ids.push(...page.entries.map((e) => e.id))
    if (!page.nextCursor) break
    cursor = page.nextCursor
  }
  assert.equal(sizes, [10, 10, 5])
  assert.is(new Set(ids).size, 25)
  assert.equal(ids, [...ids].sort((a, b) => b - a))
  assert.is((await dlq.list({ status: ['failed'] }, { limit: 100 })).entries.length, 5)
  assert.is((await dlq.list({ toolId: 'gl' }, { limit: 100 })).entries.length, 5)
  assert.is((await dlq.list({ eventType: 'webhook.github.issues' }, { limit: 100 })).entries.length, 13)
  assert.is((await dlq.list(parseDlqFilter({ status: 'pending,failed', tool: 'gh', event_type: 'webhook.github.push' }), { limit: 100 })).entries.length, 10)
  assert.is((await dlq.list({ from: new Date(Date.now() + 60_000) })).entries.length, 0)
  assert.is((await dlq.list({ to: new Date(Date.now() + 60_000) })).entries.length, 25)
  try {
    await dlq.list({}, { cursor: 'not-a-cursor' })
    assert.unreachable()
  } catch (err) {
    assert.is((err as { code: string }).code, 'DLQ_CURSOR_INVALID')
  }
  try {
    parseDlqFilter({ status: 'open' })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"status" must be one or more of pending, retrying/)
  }
})

Dlq('retryOne re-adds the event with retry_count + 1 and every field, marks it retrying and audits it', async ({ handle, redis, keys, dlq }) => {
  const [row] = await seedDlq(handle, [{ retry_count: 1 }])
  const done = await dlq.retryOne(row!.id, 'test')
  assert.equal([done.id, done.retry_count], [row!.id, 2])
  const [event, ...rest] = await streamEvents(redis, keys.stream)
  assert.is(rest.length, 0)
  assert.equal(event, { ...row!.event, retry_count: 2 })
  const detail = await dlq.get(row!.id)
  assert.equal([detail!.status, detail!.retry_count, detail!.next_retry_at], ['retrying', 2, null])
  assert.equal(detail!.history.map((h) => [h.action, h.actor]), [['dlq_requeued', 'test']])
  assert.equal((detail!.history[0]!.details as { stream_id: string }).stream_id, done.stream_id)
  try {
    await dlq.retryOne(row!.id, 'test')
    assert.unreachable()
  } catch (err) {
    assert.is((err as { code: string }).code, 'DLQ_NOT_RETRYABLE')
  }
  assert.is(await redis.xlen(keys.stream), 1)
})

Dlq('a row retrying for over an hour can be re-queued by hand again: its re-queued entry may have been trimmed or lost', async ({ handle, redis, keys, dlq }) => {
  const [row] = await seedDlq(handle, [{ retry_count: 0 }])
  await dlq.retryOne(row!.id, 'test')
  // the re-queued entry is gone (trimmed by STREAM_MAXLEN, a Redis restarted without persistence): nothing resolves the row
  await redis.del(keys.stream)
  try {
    await dlq.retryOne(row!.id, 'test')
    assert.unreachable('a row re-queued a moment ago is re-queued again')
  } catch (err) {
    assert.is((err as { code: string }).code, 'DLQ_NOT_RETRYABLE')
    assert.match((err as Error).message, /retrying since .*it can be re-queued again once it has been retrying for an hour/)
  }
  await handle.db.updateTable('webhook_dlq').set({ updated_at: new Date(Date.now() - 61 * 60_000) }).where('id', '=', row!.id).execute()
  const again = await dlq.retryOne(row!.id, 'test')
  assert.is(again.retry_count, 2)
  assert.equal((await streamEvents(redis, keys.stream)).map((e) => [e.id, e.retry_count]), [[row!.event.id, 2]])
  const detail = await dlq.get(row!.id)
  assert.equal([detail!.status, detail!.retry_count], ['retrying', 2])
  assert.equal(detail!.history.map((h) => h.action), ['dlq_requeued', 'dlq_requeued'])
  // a bulk retry still leaves retrying rows alone, stale or not
  await handle.db.updateTable('webhook_dlq').set({ updated_at: new Date(Date.now() - 61 * 60_000) }).where('id', '=', row!.id).execute()
  assert.equal(await dlq.retryMatching({}, 'test'), { count: 0, entries: [] })
})

Dlq('an entry shown leaves out headers that carry credentials, also of a raw row, whatever the ingest scrub list was', async ({ handle, redis, keys, dlq }) => {
  // stored with INGEST_SCRUB_HEADERS replaced by a list without the defaults: the credentials reached the row
  const headers = { 'x-github-event': 'push', authorization: 'Bearer s3cret', 'x-hub-signature-256': 'sha256=abc', cookie: 'session=s3cret' }
  const [row] = await seedDlq(handle, [{ event: { metadata: { headers } } }])
  const raw = await handle.db.insertInto('webhook_dlq').values({
    event_id: 'raw-1', tool_id: 'gh', event_format: 'raw', event: JSON.stringify({ raw: true }),
    event_raw: Buffer.from(JSON.stringify({ ...row!.event, id: 'raw-1', payload: { text: 'nul \u0000 kept' }, metadata: { headers } })),
    error: 'jsonb cannot hold it', error_class: 'permanent', error_code: 'PAYLOAD_NOT_STORABLE', status: 'pending',
  }).returning('id').executeTakeFirstOrThrow()
  const shown = await dlq.get(row!.id)
  assert.equal((shown!.event as { metadata: { headers: unknown } }).metadata.headers, { 'x-github-event': 'push' })
  const shownRaw = await dlq.get(raw.id)
  assert.not.match(shownRaw!.event_raw!, /s3cret|sha256=abc/)
  assert.equal(JSON.parse(shownRaw!.event_raw!).metadata.headers, { 'x-github-event': 'push' })
  assert.is(JSON.parse(shownRaw!.event_raw!).payload.text, 'nul \u0000 kept')
  // a re-queue sends the event as it was stored
  await dlq.retryOne(row!.id, 'test')
  assert.equal((await streamEvents(redis, keys.stream))[0]!.metadata!.headers, headers)
})

Dlq('retryOne refuses unknown and undecodable entries with their own codes', async ({ handle, redis, keys, dlq }) => {
  const [bad] = await seedDlq(handle, [{ undecodable: true, status: 'failed' }])
  for (const [id, code] of [[bad!.id, 'DLQ_UNDECODABLE'], [999_999, 'DLQ_NOT_FOUND']] as const) {
    try {
      await dlq.retryOne(id, 'test')
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code: string }).code, code)
    }
  }
  assert.is(await redis.exists(keys.stream), 0)
  assert.is((await dlq.discard(bad!.id, 'test')).status, 'discarded')
})

Dlq('two concurrent retries of one row XADD it once', async ({ handle, redis, keys, dlq }) => {
  const rows = await seedDlq(handle, Array.from({ length: 5 }, () => ({})))
  for (const row of rows) {
    const results = await Promise.allSettled([dlq.retryOne(row.id, 'a'), dlq.retryOne(row.id, 'b')])
    assert.is(results.filter((r) => r.status === 'fulfilled').length, 1)
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
    assert.ok(['DLQ_BUSY', 'DLQ_NOT_RETRYABLE'].includes(failed.reason.code), failed.reason.code)
  }
  assert.is(await redis.xlen(keys.stream), 5)
  assert.is(await audit(handle, 'dlq_requeued'), 5)
})

Dlq('retryMatching re-queues exactly the matching pending and failed rows', async ({ handle, redis, keys, dlq }) => {
  const rows = await seedDlq(handle, [
    ...Array.from({ length: 7 }, () => ({ event: { tool_id: 'gh' } })),
    ...Array.from({ length: 3 }, () => ({ event: { tool_id: 'gh' }, status: 'failed' as const })),
    ...Array.from({ length: 4 }, () => ({ event: { tool_id: 'other' } })),
    { event: { tool_id: 'gh' }, status: 'resolved' as const },
    { event: { tool_id: 'gh' }, undecodable: true },
  ])
  const done = await dlq.retryMatching({ toolId: 'gh' }, 'test')
  assert.is(done.count, 10)
  assert.is(done.entries.length, 10)
  const events = await streamEvents(redis, keys.stream)
  assert.equal(new Set(events.map((e) => e.id)), new Set(rows.slice(0, 10).map((r) => r.event.id)))
  assert.ok(events.every((e) => e.retry_count === 1 && (e.auth_context as { scheme: string }).scheme === 'hmac-sha256'))
  assert.equal(await dlq.countByStatus(), { pending: 5, retrying: 10, resolved: 1, failed: 0, discarded: 0 })
  assert.is((await dlq.retryMatching({ toolId: 'other', status: ['failed'] }, 'test')).count, 0)
  const other = await dlq.retryMatching({ toolId: 'other' }, 'test', undefined, 3)
  assert.equal([other.count, other.entries.length], [4, 3], 'every row counted, the first 3 listed')
})

Dlq('retryMatching re-queues the rows that matched when it started; rows dead-lettered while it runs wait for the next', async ({ handle, redis, keys, dlq }) => {
  await seedDlq(handle, Array.from({ length: 501 }, () => ({})))
  // a flood of new dead letters while the retry runs: each chunk's re-queue commits with 600 new pending rows,
  // up to 2,000 rows in all
  await sql`CREATE FUNCTION flood() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF (SELECT count(*) FROM webhook_dlq) < 2000 THEN
      INSERT INTO webhook_dlq (event_id, tool_id, event, error, error_class, error_code, retry_count, status, next_retry_at)
        SELECT event_id || '-flood-' || gen_random_uuid(), tool_id, event, error, error_class, error_code, 0, 'pending', now()
        FROM webhook_dlq WHERE status = 'retrying' LIMIT 600;
    END IF;
    RETURN NULL;
  END $$`.execute(handle.db)
  await sql`CREATE TRIGGER flood AFTER UPDATE ON webhook_dlq FOR EACH STATEMENT EXECUTE FUNCTION flood()`.execute(handle.db)
  const requeued = await dlq.retryMatching({}, 'test')
  assert.is(requeued.count, 501)
  assert.ok(Number((await sql<{ n: string }>`SELECT count(*) AS n FROM webhook_dlq WHERE status = 'pending'`.execute(handle.db)).rows[0]!.n) >= 600,
    'the flood did add rows while the retry ran')
  assert.is(await redis.xlen(keys.stream), 501)
})

Dlq('retryMatching goes on past a whole chunk of undecodable rows and re-queues the decodable ones behind it', async ({ handle, redis, keys, dlq }) => {
  // 500 rows is one chunk of the bulk retry: a chunk with nothing to re-queue must not end the walk
  await seedDlq(handle, Array.from({ length: 500 }, () => ({ event: { tool_id: 'gh' }, undecodable: true })))
  const behind = await seedDlq(handle, Array.from({ length: 3 }, () => ({ event: { tool_id: 'gh' } })))
  const done = await dlq.retryMatching({ toolId: 'gh' }, 'test')
  assert.equal(done.entries.map((d) => d.id).sort((a, b) => a - b), behind.map((r) => r.id))
  assert.equal(new Set((await streamEvents(redis, keys.stream)).map((e) => e.id)), new Set(behind.map((r) => r.event.id)))
  assert.equal(await dlq.countByStatus(), { pending: 500, retrying: 3, resolved: 0, failed: 0, discarded: 0 })
})

Dlq('a failed XADD rolls back: the rows stay pending and nothing is audited', async ({ handle }) => {
  const [row] = await seedDlq(handle, [{}])
  const down = new Redis({ port: await freePort(), lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  down.on('error', () => {})
  try {
    const dlq = new DlqStore({ db: handle.db, stream: new StreamClient({ redis: down, stream: 's' }) })
    try {
      await dlq.retryOne(row!.id, 'test')
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code: string }).code, 'REDIS_UNAVAILABLE')
    }
    assert.is((await dlq.get(row!.id))!.status, 'pending')
    assert.is(await audit(handle, 'dlq_requeued'), 0)
  } finally {
    down.disconnect()
  }
})

Dlq('discard and purge: discarded rows are audited, then deleted once older than the cut-off', async ({ handle, dlq }) => {
  const rows = await seedDlq(handle, [{}, {}, { status: 'resolved' }])
  await dlq.discard(rows[0]!.id, 'ops')
  try {
    await dlq.discard(rows[2]!.id, 'ops')
    assert.unreachable()
  } catch (err) {
    assert.is((err as { code: string }).code, 'DLQ_NOT_DISCARDABLE')
  }
  assert.is(await audit(handle, 'dlq_discarded'), 1)
  assert.is(await dlq.purge({ olderThanMs: 60_000 }), 0)
  await handle.db.updateTable('webhook_dlq').set({ updated_at: new Date(Date.now() - 120_000) }).execute()
  assert.is(await dlq.purge({ statuses: ['discarded'], olderThanMs: 60_000 }), 1)
  assert.is(await dlq.purge({ olderThanMs: 60_000 }), 1)
  assert.equal(await dlq.countByStatus(), { pending: 1, retrying: 0, resolved: 0, failed: 0, discarded: 0 })
})

Dlq('a worker that stores a re-queued event before the re-queue commits still resolves its DLQ row', async ({ handle, stream }) => {
  const [row] = await seedDlq(handle, [{ event: { tool_id: 'gh' } }])
  let resolving: Promise<number> | undefined
  // the worker is fast: it stores the re-queued event and resolves its row while the re-queue has not committed yet
  const racing = new DlqStore({ db: handle.db, stream: {
    stream: stream.stream,
    addRaw: (event, raw) => stream.addRaw(event, raw),
    async addMany(events) {
      const ids = await stream.addMany(events)
      resolving = resolveRequeued(handle.db, events, 'worker')
      await Promise.race([resolving, new Promise((r) => setTimeout(r, 300))])
      return ids
    },
  } })
  await racing.retryOne(row!.id, 'test')
  assert.is(await resolving, 1, 'the resolve closed the row')
  const after = await handle.db.selectFrom('webhook_dlq').select(['status', 'retry_count']).where('id', '=', row!.id).executeTakeFirstOrThrow()
  assert.equal(after, { status: 'resolved', retry_count: 1 })
})

Dlq.run()
