import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { readFileSync, readlinkSync } from 'node:fs'
import pg from 'pg'
import { cached, startPostgres, startRedis, type TestPostgres, type TestRedis } from './servers.js'

const Harness = suite<{ redis?: TestRedis; pg?: TestPostgres }>('test harness', {})
Harness.before(async (ctx) => {
  ctx.redis = await startRedis()
  ctx.pg = await startPostgres()
})
Harness.after(async (ctx) => {
  await ctx.redis?.stop()
  await ctx.pg?.stop()
})

Harness('starts a real Redis 7 and a real PostgreSQL that survive a stop/start', async ({ redis, pg: pgs }) => {
  const r = new Redis(redis!.url, { lazyConnect: true })
  await r.connect()
  const info = await r.info('server')
  assert.match(info, /redis_version:[7-9]\./)
  r.disconnect()
  const url = await pgs!.createDatabase()
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")
  assert.ok(Number(rows[0]!.v) >= 150000)
  await c.end()
  await pgs!.stop()
  await pgs!.start()
  const c2 = new pg.Client({ connectionString: url })
  await c2.connect()
  assert.equal((await c2.query('SELECT 1 AS one')).rows, [{ one: 1 }])
  await c2.end()
})

Harness('a shared server whose start failed is started again by the next caller, and a started one is reused', async () => {
  let starts = 0
  const shared = cached(async () => {
    starts += 1
    if (starts === 1) throw new Error('first start failed')
    return { started: starts }
  })
  const first = await shared().then(() => 'resolved', (err: Error) => err.message)
  assert.is(first, 'first start failed')
  assert.equal(await shared(), { started: 2 })
  assert.equal(await shared(), { started: 2 })
  assert.is(starts, 2)
})

Harness('the Redis on the harness port is the process the harness spawned', async ({ redis }) => {
  const r = new Redis(redis!.url, { lazyConnect: true })
  await r.connect()
  const pid = Number(/process_id:(\d+)/.exec(await r.info('server'))![1])
  r.disconnect()
  // redis-server retitles itself "redis-server 127.0.0.1:<port>" and works in its --dir
  assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), `127.0.0.1:${redis!.port}`)
  assert.is(readlinkSync(`/proc/${pid}/cwd`), redis!.dir)
})

Harness.run()
