import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { readFileSync, readlinkSync } from 'node:fs'
import pg from 'pg'
import { cached, startPostgres, startRedis, type TestPostgres, type TestRedis } from './servers.js'
import { silentListener } from './silent-listener.js'

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

/** The pid of the Redis answering on a loopback port (its INFO's process_id). */
async function redisPidOn(port: number): Promise<number> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  await r.connect()
  try {
    return Number(/process_id:(\d+)/.exec(await r.info('server'))![1])
  } finally {
    r.disconnect()
  }
}

/** Asserts that a live redis-server the harness spawned for `redis` (in its dir) owns `redis.port`. */
async function assertOwns(redis: TestRedis): Promise<void> {
  const pid = await redisPidOn(redis.port)
  assert.not.throws(() => process.kill(pid, 0), `redis-server ${pid} is alive`)
  assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), `127.0.0.1:${redis.port}`)
  assert.is(readlinkSync(`/proc/${pid}/cwd`), redis.dir)
}

Harness('when something else listens on the port startRedis picked, it starts its own Redis on another port', async () => {
  const squatter = await silentListener()
  let spawns = 0
  let redis: TestRedis | undefined
  try {
    redis = await startRedis({ firstPort: squatter.port, args: () => { spawns += 1; return [] } })
    assert.is(spawns, 2, 'the first spawn met the taken port and exited; the second one started')
    assert.is.not(redis.port, squatter.port)
    await assertOwns(redis)
  } finally {
    await redis?.stop()
    await squatter.close()
  }
})

Harness('when another Redis holds the port startRedis picked, both end on their own ports with their own process', async ({ redis: first }) => {
  let spawns = 0
  let second: TestRedis | undefined
  try {
    second = await startRedis({ firstPort: first!.port, args: () => { spawns += 1; return [] } })
    assert.is(spawns, 2, 'the first spawn met the taken port and exited; the second one started')
    assert.is.not(second.port, first!.port)
    await assertOwns(second)
    await assertOwns(first!)
  } finally {
    await second?.stop()
  }
})

Harness('a start that fails on a taken extra port (the cluster bus) starts again and reports the extra port the server listens on', async () => {
  const squatter = await silentListener()
  const attempts: number[][] = []
  let redis: TestRedis | undefined
  try {
    redis = await startRedis({ extraPorts: 1, args: (extra) => {
      attempts.push([...extra])
      // the first attempt gets the taken port, as if another process bound it between freePort() and the spawn
      return ['--cluster-enabled', 'yes', '--cluster-port', String(attempts.length === 1 ? squatter.port : extra[0])]
    } })
    assert.is(attempts.length, 2)
    assert.equal(redis.extraPorts, attempts[1])
    assert.is.not(redis.extraPorts[0], squatter.port)
    await assertOwns(redis)
    const probe = new Redis(redis.url)
    try {
      const myself = String(await probe.call('CLUSTER', 'NODES')).split('\n').find((line) => line.includes('myself'))
      assert.match(myself ?? '', `:${redis.port}@${redis.extraPorts[0]} `)
    } finally {
      probe.disconnect()
    }
  } finally {
    await redis?.stop()
    await squatter.close()
  }
})

Harness.run()
