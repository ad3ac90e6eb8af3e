import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql } from 'kysely'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { pruneAudit, pruneDeliveries, pruneEvents, startRetention, type RetentionTable } from '../../src/db/retention.js'
import { EventStore } from '../../src/db/event-store.js'
import { sharedPostgres } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const DAY = 86_400_000
const Retention = suite<{ handle: Db }>('retention', {} as { handle: Db })

Retention.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 6 })
  await migrateToLatest(ctx.handle.db)
})
Retention.after.each((ctx) => release(ctx, { handle: (h) => h.close() }))

// `count` events of `tool` accepted `ageDays` ago, written in one statement
async function seedEvents(handle: Db, tool: string, count: number, ageDays: number, prefix = `${tool}-${ageDays}d`): Promise<void> {
  await sql`INSERT INTO webhook_events (id, tool_id, tenant_id, event_type, repository, payload, stream_id, received_at)
    SELECT ${prefix} || '-' || n, ${tool}, 'acme', 'webhook.github.push', 'acme/api', '{"n":1}'::jsonb, '1-0', now() - make_interval(days => ${ageDays})
    FROM generate_series(1, ${count}) AS n`.execute(handle.db)
}
async function seedAudit(handle: Db, count: number, ageDays: number): Promise<void> {
  await sql`INSERT INTO webhook_audit_log (event_id, tool_id, entity, action, actor, details, at)
    SELECT 'e-' || n, 'gh', 'dlq', 'dead_lettered', 'test', '{}'::jsonb, now() - make_interval(days => ${ageDays})
    FROM generate_series(1, ${count}) AS n`.execute(handle.db)
}
async function seedDeliveries(handle: Db, count: number, ageDays: number): Promise<void> {
  await sql`INSERT INTO webhook_deliveries (tool_id, event_id, destination_id, attempt, started_at, duration_ms, http_status)
    SELECT 'gh', 'e-' || n, 'gh', 1, now() - make_interval(days => ${ageDays}), 5, 200
    FROM generate_series(1, ${count}) AS n`.execute(handle.db)
}
const countOf = async (handle: Db, table: RetentionTable, where = sql`true`) =>
  Number((await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.table(table)} WHERE ${where}`.execute(handle.db)).rows[0]?.n)

Retention('a retention over 36500 days is refused at start: its cutoff would be before PostgreSQL\'s first timestamp and every prune would fail', async ({ handle }) => {
  for (const name of ['eventsMs', 'auditMs', 'deliveriesMs'] as const) {
    assert.throws(() => startRetention({ db: handle.db, [name]: 3_000_000 * DAY }), (err: Error) => err instanceof RangeError && err.message.includes(`"${name}"`), name)
  }
  const longest = startRetention({ db: handle.db, eventsMs: 36_500 * DAY, auditMs: 36_500 * DAY, deliveriesMs: 36_500 * DAY })
  try {
    assert.equal(await longest.runOnce(), { webhook_events: 0, webhook_audit_log: 0, webhook_deliveries: 0 })
  } finally {
    await longest.close()
  }
})

Retention('pruneEvents deletes only events older than the cutoff, across tools, at most `limit` per call', async ({ handle }) => {
  await seedEvents(handle, 'gh', 1500, 40)
  await seedEvents(handle, 'gl', 700, 40)
  await seedEvents(handle, 'gh', 300, 1)
  await seedEvents(handle, 'jira', 50, 2)
  const before = new Date(Date.now() - 30 * DAY)
  const calls: number[] = []
  for (;;) {
    const n = await pruneEvents(handle.db, before, 1000)
    calls.push(n)
    if (n < 1000) break
  }
  assert.equal(calls, [1000, 1000, 200])
  assert.is(await countOf(handle, 'webhook_events', sql`received_at < ${before}`), 0)
  assert.is(await countOf(handle, 'webhook_events'), 350, 'the 350 recent events stay')
  assert.is(await pruneEvents(handle.db, before, 1000), 0)
})

Retention('pruneAudit deletes only audit rows older than the cutoff, oldest first', async ({ handle }) => {
  await seedAudit(handle, 2500, 400)
  await seedAudit(handle, 120, 3)
  const before = new Date(Date.now() - 365 * DAY)
  assert.equal([await pruneAudit(handle.db, before, 1000), await pruneAudit(handle.db, before, 1000), await pruneAudit(handle.db, before, 1000)], [1000, 1000, 500])
  assert.is(await pruneAudit(handle.db, before, 1000), 0)
  assert.is(await countOf(handle, 'webhook_audit_log'), 120)
})

Retention('pruneDeliveries deletes only delivery attempts that started before the cutoff, at most `limit` per call; DELIVERY_LOG_RETENTION drives it', async ({ handle }) => {
  await seedDeliveries(handle, 1500, 10)
  await seedDeliveries(handle, 70, 1)
  const before = new Date(Date.now() - 7 * DAY)
  assert.is(await pruneDeliveries(handle.db, before, 1000), 1000)
  assert.is(await countOf(handle, 'webhook_deliveries'), 570)
  const retention = startRetention({ db: handle.db, deliveriesMs: 7 * DAY, batch: 1000 })
  try {
    assert.equal(await retention.runOnce(), { webhook_events: 0, webhook_audit_log: 0, webhook_deliveries: 500 })
  } finally {
    await retention.close()
  }
  assert.is(await countOf(handle, 'webhook_deliveries'), 70, 'the 70 recent attempts stay')
})

Retention('startRetention prunes each table with its own age, reports every statement, and keeps a table without a retention', async ({ handle }) => {
  await seedEvents(handle, 'gh', 2300, 10)
  await seedEvents(handle, 'gh', 40, 0)
  await seedAudit(handle, 900, 10)
  const pruned: [RetentionTable, number][] = []
  const eventsOnly = startRetention({ db: handle.db, eventsMs: 5 * DAY, batch: 1000, intervalMs: 3_600_000, onPruned: (t, n) => pruned.push([t, n]) })
  try {
    assert.equal(await eventsOnly.runOnce(), { webhook_events: 2300, webhook_audit_log: 0, webhook_deliveries: 0 })
  } finally {
    await eventsOnly.close()
  }
  assert.equal(pruned, [['webhook_events', 1000], ['webhook_events', 1000], ['webhook_events', 300]])
  assert.is(await countOf(handle, 'webhook_events'), 40)
  assert.is(await countOf(handle, 'webhook_audit_log'), 900, 'no AUDIT_RETENTION: the audit log is kept')

  // a prune is bounded: at most maxBatches statements per table, the rest waits for the next one
  await seedAudit(handle, 100, 10)
  const bounded = startRetention({ db: handle.db, auditMs: 5 * DAY, batch: 300, maxBatches: 2, intervalMs: 3_600_000 })
  try {
    assert.equal(await bounded.runOnce(), { webhook_events: 0, webhook_audit_log: 600, webhook_deliveries: 0 })
    assert.equal(await bounded.runOnce(), { webhook_events: 0, webhook_audit_log: 400, webhook_deliveries: 0 })
  } finally {
    await bounded.close()
  }
  assert.throws(() => startRetention({ db: handle.db, batch: 0 }), /"batch" must be an integer of at least 1/)
  assert.throws(() => startRetention({ db: handle.db, dutyCycle: 0 }), /"dutyCycle" must be above 0 and at most 1/)
})

Retention('while a prune runs, new events are stored without waiting on a lock and no lock stronger than a row lock is taken', async ({ handle }) => {
  await seedEvents(handle, 'gh', 60_000, 40)
  await sql`ANALYZE webhook_events`.execute(handle.db)
  const strong = new Set<string>()
  let waitedOnLock = 0
  let pruning = true
  // a separate connection watches the table-level locks clients hold on this database's webhook_events (other test
  // databases share relation oids; autovacuum's own lock is not ours) and every backend waiting on a row or table
  // lock (relation extension by the inserts is neither)
  const watch = (async () => {
    while (pruning) {
      const locks = await sql<{ mode: string }>`SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.relation = 'webhook_events'::regclass AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND a.backend_type = 'client backend'`.execute(handle.db)
      for (const { mode } of locks.rows) if (!['AccessShareLock', 'RowExclusiveLock'].includes(mode)) strong.add(mode)
      const waiting = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event <> 'extend' AND datname = current_database()`.execute(handle.db)
      waitedOnLock += Number(waiting.rows[0]?.n)
    }
  })()
  const sink = new EventStore({ db: handle.db })
  const stored = (async () => {
    let n = 0
    while (pruning) {
      const rows = Array.from({ length: 50 }, () => ({
        id: `new-${n++}`, tool_id: 'gh', tenant_id: 'acme', event_type: 'webhook.github.push', repository: 'acme/api',
        payload: { n }, stream_id: '2-0', received_at: new Date(),
      }))
      assert.is((await sink.write(rows)).size, 0)
    }
    return n
  })()
  const retention = startRetention({ db: handle.db, eventsMs: 30 * DAY, batch: 1000, maxBatches: 1000, dutyCycle: 1, intervalMs: 3_600_000 })
  try {
    assert.equal(await retention.runOnce(), { webhook_events: 60_000, webhook_audit_log: 0, webhook_deliveries: 0 })
  } finally {
    pruning = false
    await retention.close()
  }
  const written = await stored
  await watch
  assert.ok(written > 0, 'events were stored during the prune')
  assert.is(await countOf(handle, 'webhook_events'), written, 'every new event is there, every old one is gone')
  assert.equal([...strong], [], 'no table-level lock beyond row locks')
  assert.is(waitedOnLock, 0, 'no statement waited on a lock')
})

Retention.run()
