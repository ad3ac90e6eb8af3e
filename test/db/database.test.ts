import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'kysely'
import pg from 'pg'
import { createDb, isDatabaseUnavailable } from '../../src/db/database.js'
import { sharedPostgres } from '../helpers/servers.js'
import { withTimeLimit } from '../helpers/time-limit.js'

const Database = suite('createDb')

Database('rejects options that name no database, or both, or a bad pool size', async () => {
  for (const [options, pattern] of [
    [{}, /exactly one of "url".*"pglitePath"/],
    [{ url: 'postgres://x@127.0.0.1/db', pglitePath: '/tmp/x' }, /exactly one/],
    [{ url: 'postgres://x@127.0.0.1/db', poolSize: 0 }, /"poolSize" must be an integer of at least 1; got 0/],
    [{ url: 'not a url' }, /"url" must be a PostgreSQL URL/],
  ] as const) {
    try {
      await createDb(options)
      assert.unreachable(`accepted ${JSON.stringify(options)}`)
    } catch (err) {
      assert.match((err as Error).message, pattern)
    }
  }
})

Database('a pg pool survives the server killing its idle connections and reads int8 as a number', async () => {
  const url = await (await sharedPostgres()).createDatabase()
  const errors: Error[] = []
  const { db, kind, close } = await createDb({ url, poolSize: 3, onPoolError: (err) => errors.push(err) })
  assert.is(kind, 'postgres')
  await Promise.all([1, 2, 3].map(() => sql`SELECT pg_sleep(0.05)`.execute(db)))
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  const killed = await admin.query<{ n: number }>(
    'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')
  await admin.end()
  assert.is(killed.rows[0]!.n, 3)
  for (let i = 0; i < 40 && errors.length < 3; i++) await sleep(25)
  assert.is(errors.length, 3)
  const { rows } = await sql<{ n: unknown }>`SELECT 9007199254740991::int8 AS n`.execute(db)
  assert.is(rows[0]!.n, 9007199254740991)
  const first = close()
  assert.is(close(), first)
  await first
})

Database('an unreachable server is recognised as unavailable', async () => {
  const { db, close } = await createDb({ url: 'postgres://nobody@127.0.0.1:1/none', connectTimeoutMs: 1000 })
  try {
    await sql`SELECT 1`.execute(db)
    assert.unreachable('query on a closed port succeeded')
  } catch (err) {
    assert.ok(isDatabaseUnavailable(err), String(err))
  } finally {
    await close()
  }
  assert.not.ok(isDatabaseUnavailable(Object.assign(new Error('invalid input syntax'), { code: '22P02' })))
})

Database('pglitePath creates the data dir and runs the same SQL', withTimeLimit(180_000, async () => {
  const base = mkdtempSync(join(tmpdir(), 'hookstream-pglite-'))
  const dir = join(base, 'nested', 'data')
  try {
    const { db, kind, close } = await createDb({ pglitePath: dir })
    assert.is(kind, 'pglite')
    assert.ok(existsSync(dir))
    const { rows } = await sql<{ n: unknown; j: unknown }>`SELECT 5::int8 AS n, ${'[1,2]'}::jsonb AS j`.execute(db)
    assert.equal(rows, [{ n: 5, j: [1, 2] }])
    // PGlite is one session: a query issued during a transaction must wait for it, not run inside it
    await sql`CREATE TABLE t (n int)`.execute(db)
    const order: string[] = []
    const trx = db.transaction().execute(async (tx) => {
      await sql`INSERT INTO t VALUES (1)`.execute(tx)
      await sleep(100)
      order.push('transaction')
      throw new Error('roll back')
    }).catch(() => {})
    await sleep(20)
    const outside = await sql<{ n: number }>`SELECT count(*)::int AS n FROM t`.execute(db)
    order.push('outside')
    await trx
    assert.equal(order, ['transaction', 'outside'])
    assert.equal(outside.rows, [{ n: 0 }])
    await close()
    await close()
  } finally {
    rmSync(base, { recursive: true, force: true })
  }
}))

Database.run()
