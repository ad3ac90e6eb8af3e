import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import pg from 'pg'
import { createDb } from '../../src/db/database.js'
import { databaseDurabilityLosses } from '../../src/db/database-durability.js'
import { sharedPostgres, sharedRedis, startPostgres, type TestPostgres } from '../helpers/servers.js'
import { startServiceProcess } from '../helpers/service-process.js'

// "An entry is acked only after its fate is durable" holds only while PostgreSQL keeps a commit it reported:
// with fsync or synchronous_commit off, a crash loses rows whose stream entries were already acked.
const Durable = suite<{ servers: TestPostgres[] }>('PostgreSQL durability check', { servers: [] })
Durable.after(async ({ servers }) => { await Promise.all(servers.map((s) => s.stop())) })

async function lossesAt(url: string) {
  const db = await createDb({ url })
  try {
    return (await databaseDurabilityLosses(db)).map((l) => `${l.loss} | ${l.fix}`)
  } finally {
    await db.close()
  }
}

Durable('names fsync off and synchronous_commit off, as hookstream\'s session sees them, with the setting that fixes each', async (ctx) => {
  // the test clusters run with fsync = off and synchronous_commit = off (for speed)
  const losses = await lossesAt(await (await sharedPostgres()).createDatabase())
  assert.is(losses.length, 2, losses.join('\n'))
  assert.match(losses[0]!, /PostgreSQL runs with fsync off: .*acknowledged.* \| set fsync = on/)
  assert.match(losses[1]!, /synchronous_commit is off .*acked.* \| .*synchronous_commit = on/)

  const server = await startPostgres()
  ctx.servers.push(server)
  const admin = new pg.Client({ connectionString: server.url })
  await admin.connect()
  try {
    await admin.query('ALTER SYSTEM SET fsync = on')
    await admin.query('SELECT pg_reload_conf()')
    const url = await server.createDatabase()
    const name = new URL(url).pathname.slice(1)
    // fsync on, and synchronous_commit on only for hookstream's database: what its sessions see is what counts
    assert.equal((await lossesAt(url)).length, 1)
    await admin.query(`ALTER DATABASE "${name}" SET synchronous_commit = on`)
    assert.equal(await lossesAt(url), [])
  } finally {
    await admin.end()
  }
})

Durable('hookstream run warns at start and shows the reasons on /health\'s database component (degraded)', async () => {
  const env = { REDIS_URL: (await sharedRedis()).url, DATABASE_URL: await (await sharedPostgres()).createDatabase(), STREAM_PREFIX: `pgdur-${Date.now()}:` }
  const svc = await startServiceProcess(env, 'tools:\n  - { id: t, provider: github, secret: s3cret-value, tenant_id: acme }\n')
  try {
    const health = (await (await fetch(`${svc.healthUrl}/health`)).json()) as { components: { database: { status: string; reasons?: string[] } } }
    assert.is(health.components.database.status, 'degraded')
    assert.match((health.components.database.reasons ?? []).join('; '), /fsync off.*; .*synchronous_commit is off/)
    assert.match(svc.output(), /PostgreSQL runs with fsync off/)
    assert.is((await fetch(`${svc.healthUrl}/health/ready`)).status, 200)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
})

Durable.run()
