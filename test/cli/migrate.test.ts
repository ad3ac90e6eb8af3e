import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import pg from 'pg'
import { MIGRATIONS } from '../../src/db/migrate.js'
import { runCli } from '../helpers/cli-process.js'
import { sharedPostgres } from '../helpers/servers.js'
import { withTimeLimit } from '../helpers/time-limit.js'

const Migrate = suite('hookstream migrate (process)')

async function tables(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    const { rows } = await c.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables
      WHERE table_schema = 'public' AND table_name LIKE 'webhook%' ORDER BY 1`)
    return rows.map((r) => r.t)
  } finally {
    await c.end()
  }
}

Migrate('creates the tables on an empty database, needs no Redis, and a second run changes nothing', withTimeLimit(180_000, async () => {
  const url = await (await sharedPostgres()).createDatabase()
  assert.equal(await tables(url), [])
  // a Redis nobody listens on: migrate must not need one
  const env = { DATABASE_URL: url, REDIS_URL: 'redis://127.0.0.1:1' }
  const first = await runCli(['migrate'], env)
  assert.is(first.code, 0, first.stderr)
  assert.match(first.stdout, `applied ${Object.keys(MIGRATIONS).length} migrations: ${Object.keys(MIGRATIONS).sort().join(', ')}`)
  const created = await tables(url)
  assert.ok(created.includes('webhook_events') && created.includes('webhook_dlq'), created.join(','))
  const second = await runCli(['migrate'], env)
  assert.is(second.code, 0, second.stderr)
  assert.match(second.stdout, 'no pending migrations; the database is up to date')
  assert.equal(await tables(url), created)
}))

Migrate('an unreachable database fails with a non-zero exit and a message naming it', withTimeLimit(180_000, async () => {
  const r = await runCli(['migrate'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', REDIS_URL: 'redis://127.0.0.1:1' })
  assert.not.equal(r.code, 0)
  assert.match(r.stderr, /127\.0\.0\.1:1|ECONNREFUSED|database/i)
  assert.not.match(r.stderr, 'nobody@', 'the URL with its user is not echoed')
}))

Migrate.run()
