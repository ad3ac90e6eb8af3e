import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { isPipelineError } from '../../src/core/errors.js'
import { EventStore, type EventRow } from '../../src/db/event-store.js'
import { sharedPostgres, startPostgres, type TestPostgres } from '../helpers/servers.js'

function row(id: string, payload: unknown = { n: id }, extra: Partial<EventRow> = {}): EventRow {
  return {
    id, tool_id: 'gh-main', tenant_id: 'acme', event_type: 'webhook.github.push', repository: 'acme/app',
    payload, stream_id: '1718000000000-0', received_at: new Date('2026-01-01T00:00:00Z'), ...extra,
  }
}

async function count(handle: Db, prefix: string): Promise<number> {
  const r = await handle.db.selectFrom('webhook_events').select((eb) => eb.fn.countAll<number>().as('n'))
    .where('id', 'like', `${prefix}%`).executeTakeFirstOrThrow()
  return Number(r.n)
}

for (const kind of ['postgres', 'pglite'] as const) {
  const Sink = suite<{ handle?: Db }>(`EventStore on ${kind}`, {})
  Sink.before(async (ctx) => {
    ctx.handle = kind === 'postgres'
      ? await createDb({ url: await (await sharedPostgres()).createDatabase() })
      : await createDb({ pglitePath: 'memory://' })
    await migrateToLatest(ctx.handle.db)
  })
  Sink.after(async (ctx) => { await ctx.handle?.close() })

  Sink('stores new rows once and reports stored ones as not inserted', async ({ handle }) => {
    const p = `a-${randomUUID()}-`
    const sink = new EventStore({ db: handle!.db })
    const first = await sink.writeReturning([row(`${p}1`, [1, 2]), row(`${p}2`, 'text', { transformed: { k: 1 } }), row(`${p}3`, null)])
    assert.is(first.failures.size, 0)
    assert.equal([...first.inserted], [0, 1, 2])
    const again = await sink.writeReturning([row(`${p}1`), row(`${p}4`), row(`${p}2`), row(`${p}4`)])
    assert.is(again.failures.size, 0)
    assert.equal([...again.inserted], [1])
    assert.is(await count(handle!, p), 4)
    const stored = await handle!.db.selectFrom('webhook_events').select(['id', 'payload', 'transformed', 'forwarded_at', 'processed_at'])
      .where('id', 'like', `${p}%`).orderBy('id').execute()
    assert.equal(stored.map((r) => [r.payload, r.transformed, r.forwarded_at]),
      [[[1, 2], null, null], ['text', { k: 1 }, null], [null, null, null], [{ n: `${p}4` }, null, null]])
    assert.ok(stored.every((r) => r.processed_at instanceof Date))
    assert.equal(await sink.write([]), new Map())
    await sink.close()
  })

  Sink('statements in flight together each send their own payload bytes, also when the store reuses a buffer', async ({ handle }) => {
    const p = `r-${randomUUID()}-`
    const sink = new EventStore({ db: handle!.db })
    // payload text as a producer wrote it (a v2 entry's payload field); sizes differ from batch to batch
    const payloadOf = (b: number, i: number) => JSON.stringify({ b, i, pad: String.fromCharCode(97 + ((b + i) % 26)).repeat(200 + ((b * 7919 + i * 104729) % 5000)) })
    const batch = (b: number, n: number) => Array.from({ length: n }, (_, i) => row(`${p}${b}-${i}`, null, { payloadJson: payloadOf(b, i) }))
    // more statements at once than the pool has connections, then smaller batches after larger ones
    const together = await Promise.all([12, 3, 40, 1, 25, 7, 33, 2, 18, 5, 29, 9].map((n, b) => sink.writeReturning(batch(b, n))))
    assert.ok(together.every((r) => r.failures.size === 0))
    for (const [b, n] of [[20, 60], [21, 1], [22, 30], [23, 2]] as const) assert.is((await sink.writeReturning(batch(b, n))).failures.size, 0)
    const stored = await handle!.db.selectFrom('webhook_events').select(['id', 'payload']).where('id', 'like', `${p}%`).execute()
    assert.is(stored.length, 184 + 93)
    for (const r of stored) {
      const [b, i] = r.id.slice(p.length).split('-').map(Number) as [number, number]
      assert.equal(r.payload, JSON.parse(payloadOf(b, i)), `payload of ${r.id}`)
    }
    await sink.close()
  })

  Sink('the buffers kept for reuse are let go once no statement ran for spareIdleMs, and kept while statements run', async ({ handle }) => {
    const p = `i-${randomUUID()}-`
    const sink = new EventStore({ db: handle!.db, spareIdleMs: 300 })
    const write = (b: number) => sink.writeReturning(Array.from({ length: 20 }, (_, i) => row(`${p}${b}-${i}`, null, { payloadJson: JSON.stringify({ pad: 'x'.repeat(2000) }) })))
    assert.is(sink.spareBytes, 0)
    await write(0)
    assert.ok(sink.spareBytes >= 20 * 2000, `a buffer is kept after the statement; got ${sink.spareBytes} bytes`)
    // statements closer together than the idle time keep it
    const started = performance.now()
    let lastAt = started
    for (let b = 1; performance.now() - started < 700; b++) {
      await write(b)
      lastAt = performance.now()
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.ok(sink.spareBytes > 0, `kept while statements run (${Math.round(performance.now() - started)} ms in)`)
    }
    while (sink.spareBytes > 0 && performance.now() - lastAt < 5000) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.is(sink.spareBytes, 0, 'let go once idle')
    // the last statement gave its buffer back just before its write resolved: not released within half the idle time
    assert.ok(performance.now() - lastAt >= 150, `not before the idle time; after ${Math.round(performance.now() - lastAt)} ms`)
    // the next statement allocates again, and stores as before
    assert.is((await write(99)).failures.size, 0)
    assert.ok(sink.spareBytes > 0)
    await sink.close()
    assert.is(sink.spareBytes, 0)
    assert.throws(() => new EventStore({ db: handle!.db, spareIdleMs: 0 }), /"spareIdleMs" must be an integer from 1/)
  })

  Sink('a poison row fails alone with STORE_REJECTED and its neighbours are stored', async ({ handle }) => {
    const p = `b-${randomUUID()}-`
    const sink = new EventStore({ db: handle!.db })
    const rows = [0, 1, 2, 3, 4].map((i) => row(`${p}${i}`, i === 2 ? { secret: 'tok-123\u0000' } : { i }))
    const { failures, inserted } = await sink.writeReturning(rows)
    assert.equal([...failures.keys()], [2])
    const err = failures.get(2)!
    assert.ok(isPipelineError(err))
    assert.is(err.kind, 'permanent')
    assert.is(err.code, 'STORE_REJECTED')
    assert.match(err.message, `"${p}2"`)
    assert.match(err.message, /SQLSTATE 22/)
    assert.not.match(err.message, /tok-123/)
    assert.equal([...inserted], [0, 1, 3, 4])
    assert.is(await count(handle!, p), 4)
    const unserializable = await sink.writeReturning([row(`${p}5`, { big: 1n }), row(`${p}6`)])
    assert.equal([...unserializable.failures.keys()], [0])
    assert.is(unserializable.failures.get(0)!.code, 'STORE_REJECTED')
    assert.match(unserializable.failures.get(0)!.message, /cannot be written as JSON/)
    assert.equal([...unserializable.inserted], [1])
  })

  Sink('with eventJson the payload comes from the raw entry text, and a poison one still fails alone', async ({ handle }) => {
    const p = `e-${randomUUID()}-`
    const sink = new EventStore({ db: handle!.db })
    const raw = (id: string, payload: unknown) => JSON.stringify({ id, tool_id: 't', payload, note: 'other fields are ignored' })
    const rows = [
      row(`${p}1`, 'not used', { eventJson: raw(`${p}1`, { from: 'raw', list: [1, 2] }) }),
      row(`${p}2`, 'not used', { eventJson: raw(`${p}2`, { bad: 'x\u0000y' }) }),
      row(`${p}3`, 'not used', { eventJson: raw(`${p}3`, null) }),
    ]
    const { failures, inserted } = await sink.writeReturning(rows)
    assert.equal([...failures.keys()], [1])
    assert.is(failures.get(1)!.code, 'STORE_REJECTED')
    assert.equal([...inserted], [0, 2])
    const stored = await handle!.db.selectFrom('webhook_events').select(['id', 'payload']).where('id', 'like', `${p}%`).orderBy('id').execute()
    assert.equal(stored.map((r) => r.payload), [{ from: 'raw', list: [1, 2] }, null])
  })

  Sink('payloads of every form, with multi-byte characters, each land in their own row beside a refused one', async ({ handle }) => {
    const p = `m-${randomUUID()}-`
    const sink = new EventStore({ db: handle!.db })
    const rows = [
      row(`${p}1`, 'not used', { payloadJson: '{"text":"Grüße € 😀","n":1}' }),
      row(`${p}2`, 'not used', { payloadJson: '{"not json"' }),
      row(`${p}3`, 'not used', { eventJson: JSON.stringify({ id: `${p}3`, payload: { text: 'ünïcödé ✓' } }) }),
      row(`${p}4`, { text: '日本語', list: [1, 2] }, { transformed: { t: 'ß' } }),
      row(`${p}5`, 'not used', { payloadJson: '["a","€",3]', forwarded_at: new Date('2026-02-03T04:05:06Z') }),
      row(`${p}1`, 'not used', { payloadJson: '{"a repeat":true}' }),
    ]
    const { failures, inserted } = await sink.writeReturning(rows)
    assert.equal([...failures.keys()], [1])
    assert.is(failures.get(1)!.code, 'PAYLOAD_NOT_JSON')
    assert.equal([...inserted].sort(), [0, 2, 3, 4])
    const stored = await handle!.db.selectFrom('webhook_events').select(['id', 'payload', 'transformed', 'forwarded_at'])
      .where('id', 'like', `${p}%`).orderBy('id').execute()
    assert.equal(stored.map((r) => [r.id.slice(p.length), r.payload, r.transformed, r.forwarded_at && new Date(r.forwarded_at).toISOString()]), [
      ['1', { text: 'Grüße € 😀', n: 1 }, null, null],
      ['3', { text: 'ünïcödé ✓' }, null, null],
      ['4', { text: '日本語', list: [1, 2] }, { t: 'ß' }, null],
      ['5', ['a', '€', 3], null, '2026-02-03T04:05:06.000Z'],
    ])
  })

  Sink('markForwarded sets forwarded_at on exactly the given rows', async ({ handle }) => {
    const p = `c-${randomUUID()}-`
    const sink = new EventStore({ db: handle!.db })
    await sink.write([row(`${p}1`), row(`${p}2`), row(`${p}3`)])
    const at = new Date('2026-02-03T04:05:06Z')
    assert.is(await sink.markForwarded([`${p}1`, `${p}3`, `${p}missing`].map((id) => ({ tool_id: row(id).tool_id, id })), at), 2)
    assert.is(await sink.markForwarded([], at), 0)
    const stored = await handle!.db.selectFrom('webhook_events').select(['id', 'forwarded_at'])
      .where('id', 'like', `${p}%`).orderBy('id').execute()
    assert.equal(stored.map((r) => r.forwarded_at?.toISOString() ?? null), [at.toISOString(), null, at.toISOString()])
  })

  Sink.run()
}

const Limits = suite<{ handle?: Db; server?: TestPostgres }>('EventStore on a real server', {})
Limits.before(async (ctx) => {
  ctx.server = await startPostgres()
  ctx.handle = await createDb({ url: await ctx.server.createDatabase(), connectTimeoutMs: 2000 })
  await migrateToLatest(ctx.handle.db)
})
Limits.after(async (ctx) => {
  await ctx.handle?.close()
  await ctx.server?.stop()
})

Limits('a batch of 7,000 rows (above the 1,000 rows of one statement) is split and fully stored', async ({ handle }) => {
  const p = `d-${randomUUID()}-`
  const sink = new EventStore({ db: handle!.db })
  const rows = Array.from({ length: 7000 }, (_, i) => row(`${p}${i}`, { i }))
  const { failures, inserted } = await sink.writeReturning(rows)
  assert.is(failures.size, 0)
  assert.is(inserted.size, 7000)
  assert.is(await count(handle!, p), 7000)
  const again = await sink.writeReturning(rows)
  assert.is(again.inserted.size, 0)
  assert.is(again.failures.size, 0)
})

Limits('a stopped server rejects with DATABASE_UNAVAILABLE and the same sink works once it is back', async ({ handle, server }) => {
  const p = `e-${randomUUID()}-`
  const sink = new EventStore({ db: handle!.db })
  await sink.write([row(`${p}1`)])
  await server!.stop()
  try {
    for (const attempt of [() => sink.write([row(`${p}2`)]), () => sink.markForwarded([{ tool_id: row(`${p}1`).tool_id, id: `${p}1` }])]) {
      try {
        await attempt()
        assert.unreachable('wrote to a stopped server')
      } catch (err) {
        assert.ok(isPipelineError(err), String(err))
        assert.is(err.kind, 'infrastructure')
        assert.is(err.code, 'DATABASE_UNAVAILABLE')
      }
    }
  } finally {
    await server!.start()
  }
  const { inserted, failures } = await sink.writeReturning([row(`${p}1`), row(`${p}2`)])
  assert.is(failures.size, 0)
  assert.equal([...inserted], [1])
  assert.is(await count(handle!, p), 2)
})

Limits('a database without the tables rejects with STORE_FAILED instead of dead-lettering every row', async ({ server }) => {
  const empty = await createDb({ url: await server!.createDatabase() })
  try {
    await new EventStore({ db: empty.db }).write([row('x-1'), row('x-2')])
    assert.unreachable('wrote to a database without webhook_events')
  } catch (err) {
    assert.ok(isPipelineError(err), String(err))
    assert.is(err.kind, 'infrastructure')
    assert.is(err.code, 'STORE_FAILED')
    assert.match(err.message, /hookstream migrate/)
  } finally {
    await empty.close()
  }
})

Limits.run()
