import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql } from 'kysely'
import { Redis } from 'ioredis'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { isPipelineError } from '../../src/core/errors.js'
import type { StreamEvent } from '../../src/core/event.js'
import { parseReplayRequest, readReplay, startReplay, type ReplaySend } from '../../src/pipelines/replay.js'
import { sharedPostgres, startRedis, type TestRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

interface Ctx { handle: Db; server: TestRedis; redis: Redis }
const Replay = suite<Ctx>('replay of stored events', {} as Ctx)

Replay.before.each(async (ctx) => {
  ctx.server = await startRedis()
  ctx.redis = new Redis(ctx.server.url)
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
})
Replay.after.each((ctx) => release(ctx, { redis: (r) => r.disconnect(), server: (s) => s.stop(), handle: (h) => h.close() }))

const BASE = Date.parse('2026-03-01T12:00:00Z')
async function store(handle: Db, tool: string, count: number, type = 'webhook.github.push'): Promise<void> {
  await handle.db.insertInto('webhook_events').values(Array.from({ length: count }, (_, i) => ({
    id: `${tool}-${i}`, tool_id: tool, tenant_id: 'acme', event_type: type, repository: 'acme/api',
    payload: JSON.stringify({ n: i, tool }), stream_id: '1-0', received_at: new Date(BASE + i * 1000).toISOString(),
  }))).execute()
}

// records what a replay hands to delivery
function recorder(): { send: ReplaySend; sent: { event: StreamEvent; replay: string; destination?: string }[] } {
  const sent: { event: StreamEvent; replay: string; destination?: string }[] = []
  return {
    sent,
    send: async (events, replay) => {
      for (const { event } of events) sent.push({ event, replay: replay.id, ...(replay.destination ? { destination: replay.destination } : {}) })
      return events.length
    },
  }
}

const codeOf = async (work: () => Promise<unknown>): Promise<string> => {
  try {
    await work()
  } catch (err) {
    return isPipelineError(err) ? `${err.code}: ${err.message}` : `not a PipelineError: ${(err as Error).message}`
  }
  return 'no error'
}

Replay('a dry run counts what a filter matches and sends nothing', async ({ handle, redis }) => {
  await store(handle, 'gh', 30)
  await store(handle, 'other', 5)
  const { send, sent } = recorder()
  const given = { tool: 'gh', dry_run: 'true' }
  const start = await startReplay({ db: handle.db, redis, send, request: parseReplayRequest(given), given, actor: 'test' })
  assert.equal(start, { dryRun: true, matched: 30, capped: false, needsConfirm: false })
  assert.is(sent.length, 0)
  const audit = await handle.db.selectFrom('webhook_audit_log').selectAll().execute()
  assert.is(audit.length, 0)
})

Replay('a replay of more than confirmOver events needs confirm; with it every matched event is sent once, marked, and the replay audited', async ({ handle, redis }) => {
  await store(handle, 'gh', 1200)
  await store(handle, 'gh-pr', 7, 'webhook.github.pull_request')
  const { send, sent } = recorder()
  const limits = { maxEvents: 5000, confirmOver: 1000 }
  const given = { tool: 'gh', destination: 'ci' }
  assert.match(await codeOf(() => startReplay({ db: handle.db, redis, send, request: parseReplayRequest(given), given, actor: 'alice', limits })),
    /^REPLAY_CONFIRM_REQUIRED: the filter matches 1200 events, more than 1000/)
  assert.is(sent.length, 0)
  const confirmed = { ...given, confirm: 'true' }
  const start = await startReplay({ db: handle.db, redis, send, request: parseReplayRequest(confirmed), given: confirmed, actor: 'alice', limits })
  if (start.dryRun) return assert.unreachable('a confirmed replay runs')
  assert.is(start.record.status, 'running')
  assert.is(start.record.matched, 1200)
  const done = await start.finished
  assert.is(done.status, 'done')
  assert.is(done.sent, 1200)
  assert.is(done.skipped, 0)
  assert.is(sent.length, 1200)
  assert.is(new Set(sent.map((s) => s.event.id)).size, 1200)
  assert.ok(sent.every((s) => s.event.tool_id === 'gh' && s.replay === done.id && s.destination === 'ci'))
  assert.ok(sent.every((s) => (s.event.metadata as { replay_id?: string }).replay_id === done.id))
  const first = sent.find((s) => s.event.id === 'gh-7')?.event
  assert.equal(first?.payload, { n: 7, tool: 'gh' })
  assert.is(first?.event_type, 'webhook.github.push')
  assert.is(first?.timestamp, new Date(BASE + 7000).toISOString())
  const record = await readReplay(redis, done.id)
  assert.equal(record, done)
  const audit = await handle.db.selectFrom('webhook_audit_log').selectAll().execute()
  assert.is(audit.length, 1)
  assert.is(audit[0]?.entity, 'event')
  assert.is(audit[0]?.action, 'events_replayed')
  assert.is(audit[0]?.actor, 'alice')
  assert.equal(audit[0]?.details, { replay_id: done.id, filter: confirmed, destination: 'ci', matched: 1200 })
})

Replay('a filter matching more than maxEvents is refused; dead letters never stored are skipped, not invented', async ({ handle, redis }) => {
  await store(handle, 'gh', 12)
  await sql`INSERT INTO webhook_dlq (event_id, tool_id, event, error, error_class, status, failed_at)
    VALUES ('gh-lost', 'gh', ${JSON.stringify({ id: 'gh-lost', tool_id: 'gh', tenant_id: 'acme', event_type: 'webhook.github.push', repository: 'acme/api' })}::jsonb,
      'HTTP 500', 'transient', 'pending', ${new Date(BASE).toISOString()})`.execute(handle.db)
  const { send, sent } = recorder()
  const given = { tool: 'gh' }
  assert.match(await codeOf(() => startReplay({ db: handle.db, redis, send, request: parseReplayRequest(given), given, actor: 't', limits: { maxEvents: 10, confirmOver: 100 } })),
    /^REPLAY_TOO_LARGE: the filter matches more than 10 events/)
  const start = await startReplay({ db: handle.db, redis, send, request: parseReplayRequest(given), given, actor: 't', limits: { maxEvents: 100, confirmOver: 100 } })
  if (start.dryRun) return assert.unreachable('not a dry run')
  const done = await start.finished
  assert.equal([done.matched, done.sent, done.skipped], [13, 12, 1])
  assert.not.ok(sent.some((s) => s.event.id === 'gh-lost'))
})

Replay('a replay whose delivery fails is recorded as failed with the reason', async ({ handle, redis }) => {
  await store(handle, 'gh', 3)
  const given = { tool: 'gh' }
  const start = await startReplay({ db: handle.db, redis, request: parseReplayRequest(given), given, actor: 't',
    send: async () => { throw new Error('Redis said no') } })
  if (start.dryRun) return assert.unreachable('not a dry run')
  const done = await start.finished
  assert.is(done.status, 'failed')
  assert.is(done.error, 'Redis said no')
  assert.is((await readReplay(redis, done.id))?.status, 'failed')
})

Replay('bad replay requests are refused with what was wrong', () => {
  const code = (input: Record<string, string>) => {
    try {
      parseReplayRequest(input)
      return 'accepted'
    } catch (err) {
      return isPipelineError(err) ? `${err.code}: ${err.message}` : String(err)
    }
  }
  assert.match(code({}), /^REPLAY_INVALID: a replay needs at least one filter/)
  assert.match(code({ dry_run: 'true' }), /^REPLAY_INVALID: a replay needs at least one filter/)
  assert.match(code({ tool: 'gh', limit: '5' }), /^REPLAY_INVALID: unknown replay parameter\(s\) "limit"/)
  assert.match(code({ tool: 'gh', confirm: 'yes' }), /^REPLAY_INVALID: replay parameter "confirm" must be true or false/)
  assert.match(code({ tool: 'gh', destination: 'Not An Id' }), /^REPLAY_INVALID: replay parameter "destination" must be a destination id/)
  assert.match(code({ tool: 'gh', status: 'lost' }), /^EVENT_FILTER_INVALID: /)
  assert.equal(parseReplayRequest({ event_type: 'webhook.github.pull_request*', dry_run: 'false' }),
    { filter: { eventType: 'webhook.github.pull_request*' }, dryRun: false, confirm: false })
})

Replay.run()
