import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import pg from 'pg'
import { createHealth, startHealthServer, type HealthOptions, type HealthReport, type HealthServer } from '../../src/http/health.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { startPostgres, startRedis, type TestPostgres, type TestRedis } from '../helpers/servers.js'

interface Ctx { redisServer?: TestRedis; pgServer?: TestPostgres; redis?: Redis; pool?: pg.Pool }
const Health = suite<Ctx>('health', {})

Health.before(async (ctx) => {
  ctx.redisServer = await startRedis({ appendonly: true })
  ctx.pgServer = await startPostgres()
  // no offline queue: while Redis is down a PING fails at once instead of waiting for the reconnect
  ctx.redis = new Redis(ctx.redisServer.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 100 })
  ctx.redis.on('error', () => {})
  ctx.pool = new pg.Pool({ connectionString: await ctx.pgServer.createDatabase(), connectionTimeoutMillis: 1000, max: 4 })
  ctx.pool.on('error', () => {})
})
Health.after(async (ctx) => {
  ctx.redis?.disconnect()
  await ctx.pool?.end()
  await ctx.redisServer?.stop()
  await ctx.pgServer?.stop()
})

/** The check functions the service wires, written here against the real servers. */
async function checks(ctx: Ctx, worker: HealthOptions['worker'] = () => ({ inFlight: 0, processed: 0, shuttingDown: false })) {
  const redis = ctx.redis as Redis
  const pool = ctx.pool as pg.Pool
  const stream = new StreamClient({ redis, stream: `test-${randomUUID()}:webhook_events` })
  await redis.call('XGROUP', 'CREATE', stream.stream, 'webhook_workers', '$', 'MKSTREAM')
  const options: HealthOptions = {
    checkDatabase: async () => {
      await pool.query('SELECT 1')
      return { openConnections: pool.totalCount, idleConnections: pool.idleCount, waiting: pool.waitingCount }
    },
    checkRedis: async () => ({ ping: await redis.ping() }),
    checkQueue: async () => {
      const info = await stream.info()
      const group = info.groups.find((g) => g.name === 'webhook_workers')
      return { depth: info.length, lag: group?.lag ?? 0, pending: group?.pending ?? 0, oldestPendingAgeSeconds: 0, groupExists: !!group }
    },
    worker,
    timeoutMs: 1000,
  }
  return { options, stream }
}

async function serve(options: HealthOptions, fn: (server: HealthServer) => Promise<void>): Promise<void> {
  const health = createHealth(options)
  const server = await startHealthServer(health, { port: 0, host: '127.0.0.1' })
  try {
    await fn(server)
  } finally {
    await server.close()
    health.close()
  }
}

async function get(server: HealthServer, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`)
  const text = await res.text()
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text }
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(100)
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`)
}

Health('with everything up, /health, /health/ready and /health/live answer 200 with component details', async (ctx) => {
  const { options } = await checks(ctx, () => ({ inFlight: 3, processed: 42, shuttingDown: false }))
  await serve(options, async (server) => {
    const health = await get(server, '/health')
    assert.is(health.status, 200)
    const body = health.body as HealthReport
    assert.is(body.status, 'healthy')
    assert.ok(!Number.isNaN(Date.parse(body.timestamp)))
    assert.equal(Object.keys(body.components).sort(), ['database', 'queue', 'redis', 'worker'])
    assert.is(body.components.database.status, 'healthy')
    assert.ok((body.components.database.openConnections as number) >= 1)
    assert.is(body.components.redis.ping, 'PONG')
    assert.is(body.components.queue.groupExists, true)
    assert.is(body.components.worker.inFlight, 3)
    assert.is(body.components.worker.processed, 42)
    assert.type(body.components.worker.eventLoopLagMs, 'number')
    assert.type(body.components.worker.uptimeSeconds, 'number')
    assert.ok((body.components.worker.memory as { rssBytes: number }).rssBytes > 0)
    assert.type(body.components.redis.durationMs, 'number')
    assert.equal((await get(server, '/health/ready')).body, { ready: true, reasons: [] })
    assert.is((await get(server, '/health/live')).status, 200)
  })
})

Health('the health port answers errors in the one error shape: unknown path 404, other methods 405, /metrics off 404', async (ctx) => {
  const { options } = await checks(ctx)
  await serve(options, async (server) => {
    const unknown = await get(server, '/nope')
    assert.equal([unknown.status, unknown.body.error.code], [404, 'NOT_FOUND'])
    assert.match(unknown.body.error.message, 'try /health, /health/live, /health/ready or /metrics')
    const metricsOff = await get(server, '/metrics')
    assert.equal([metricsOff.status, metricsOff.body.error.code], [404, 'NOT_FOUND'])
    const post = await fetch(`${server.url}/health`, { method: 'POST' })
    assert.equal([post.status, post.headers.get('allow')], [405, 'GET, HEAD'])
    const body = (await post.json()) as { error: { code: string; message: string } }
    assert.is(body.error.code, 'METHOD_NOT_ALLOWED')
    assert.match(body.error.message, 'POST is not allowed on /health; use GET')
  })
})

Health('Redis stopped: /health is 503 with redis unhealthy and not ready; restarted: 200 again', async (ctx) => {
  const { options } = await checks(ctx)
  await serve(options, async (server) => {
    await ctx.redisServer!.stop()
    try {
      const down = await get(server, '/health')
      assert.is(down.status, 503)
      assert.is(down.body.status, 'unhealthy')
      assert.is(down.body.components.redis.status, 'unhealthy')
      assert.is(down.body.components.database.status, 'healthy')
      const ready = await get(server, '/health/ready')
      assert.is(ready.status, 503)
      assert.ok(ready.body.reasons.some((r: string) => r.startsWith('redis: ')), JSON.stringify(ready.body))
      assert.is((await get(server, '/health/live')).status, 200, 'a dependency outage is not a reason to restart the process')
    } finally {
      await ctx.redisServer!.start()
    }
    await eventually('health back to 200', async () => (await get(server, '/health')).status === 200)
    assert.is((await get(server, '/health/ready')).status, 200)
  })
})

Health('PostgreSQL stopped: /health is 503 with database unhealthy and not ready; restarted: 200 again', async (ctx) => {
  const { options } = await checks(ctx)
  await serve(options, async (server) => {
    await ctx.pgServer!.stop()
    try {
      const down = await get(server, '/health')
      assert.is(down.status, 503)
      assert.is(down.body.components.database.status, 'unhealthy')
      assert.type(down.body.components.database.error, 'string')
      assert.is(down.body.components.redis.status, 'healthy')
      const ready = await get(server, '/health/ready')
      assert.is(ready.status, 503)
      assert.equal(ready.body.reasons.filter((r: string) => r.startsWith('database: ')).length, 1)
    } finally {
      await ctx.pgServer!.start()
    }
    await eventually('health back to 200', async () => (await get(server, '/health')).status === 200)
    assert.is((await get(server, '/health/ready')).status, 200)
  })
})

Health('a check that hangs fails within the timeout, naming the component', async (ctx) => {
  const { options } = await checks(ctx)
  await serve({ ...options, timeoutMs: 300, checkRedis: () => new Promise(() => {}) }, async (server) => {
    const started = Date.now()
    const res = await get(server, '/health')
    const elapsed = Date.now() - started
    assert.ok(elapsed < 1500, `answered after ${elapsed} ms`)
    assert.ok(elapsed >= 250, `answered after ${elapsed} ms, before the timeout`)
    assert.is(res.status, 503)
    assert.is(res.body.components.redis.code, 'HEALTH_CHECK_TIMEOUT')
    assert.match(res.body.components.redis.error, /health check "redis" did not answer within 300 ms/)
  })
})

Health('queue depth above the threshold, an old pending entry or recent poison entries make health degraded, still 200', async (ctx) => {
  let poisonRecent = 0
  const { options, stream } = await checks(ctx, () => ({ inFlight: 0, processed: 0, shuttingDown: false, poisonRecent }))
  for (let i = 0; i < 5; i++) await ctx.redis!.call('XADD', stream.stream, '*', 'event', '{}')
  await serve({ ...options, maxQueueDepth: 3 }, async (server) => {
    const res = await get(server, '/health')
    assert.is(res.status, 200)
    assert.is(res.body.status, 'degraded')
    assert.is(res.body.components.queue.depth, 5)
    assert.equal(res.body.components.queue.reasons, ['5 entries wait in the queue (consumer lag 5 + pending 0), above 3'])
    assert.is((await get(server, '/health/ready')).status, 200, 'a backlog does not make the worker unready')
  })
  const aged = { ...options, checkQueue: async () => ({ depth: 0, lag: 0, pending: 1, oldestPendingAgeSeconds: 301, groupExists: true }) }
  await serve(aged, async (server) => {
    const res = await get(server, '/health')
    assert.is(res.body.status, 'degraded')
    assert.match(res.body.components.queue.reasons[0], /oldest pending entry is 301 s old, above 300 s/)
  })
  poisonRecent = 2
  await serve(options, async (server) => {
    const res = await get(server, '/health')
    assert.is(res.status, 200)
    assert.is(res.body.components.worker.status, 'degraded')
    assert.equal(res.body.components.worker.reasons, ['2 poison entries dead-lettered in the last 5 minutes'])
  })
})

Health('acked entries the trim has not removed yet are no backlog: health stays healthy while the stream is long', async (ctx) => {
  const { options, stream } = await checks(ctx)
  for (let i = 0; i < 5; i++) await ctx.redis!.call('XADD', stream.stream, '*', 'event', '{}')
  await ctx.redis!.call('XREADGROUP', 'GROUP', 'webhook_workers', 'w1', 'COUNT', 10, 'STREAMS', stream.stream, '>')
  const ids = ((await ctx.redis!.call('XRANGE', stream.stream, '-', '+')) as [string, string[]][]).map(([id]) => id)
  assert.is(await ctx.redis!.call('XACK', stream.stream, 'webhook_workers', ...ids), 5)
  await serve({ ...options, maxQueueDepth: 3 }, async (server) => {
    const res = await get(server, '/health')
    assert.is(res.status, 200)
    assert.is(res.body.components.queue.depth, 5, 'the stream still holds the 5 acked entries (XLEN)')
    assert.is(res.body.components.queue.status, 'healthy', JSON.stringify(res.body.components.queue.reasons))
    assert.is(res.body.status, 'healthy')
  })
  // negative control: the same stream with 2 more entries unread and 2 read but unacked is a backlog of 4 > 3
  for (let i = 0; i < 4; i++) await ctx.redis!.call('XADD', stream.stream, '*', 'event', '{}')
  await ctx.redis!.call('XREADGROUP', 'GROUP', 'webhook_workers', 'w1', 'COUNT', 2, 'STREAMS', stream.stream, '>')
  await serve({ ...options, maxQueueDepth: 3 }, async (server) => {
    const res = await get(server, '/health')
    assert.is(res.body.components.queue.status, 'degraded')
    assert.equal(res.body.components.queue.reasons, ['4 entries wait in the queue (consumer lag 2 + pending 2), above 3'])
  })
})

Health('a missing consumer group makes health unhealthy and the worker unready', async (ctx) => {
  const { options, stream } = await checks(ctx)
  await ctx.redis!.call('XGROUP', 'DESTROY', stream.stream, 'webhook_workers')
  await serve(options, async (server) => {
    const res = await get(server, '/health')
    assert.is(res.status, 503)
    assert.is(res.body.components.queue.groupExists, false)
    const ready = await get(server, '/health/ready')
    assert.is(ready.status, 503)
    assert.match(ready.body.reasons.join('\n'), /consumer group does not exist/)
  })
})

Health('while shutting down, ready is 503 with the reason while live stays 200', async (ctx) => {
  const { options } = await checks(ctx, () => ({ inFlight: 2, processed: 9, shuttingDown: true }))
  await serve(options, async (server) => {
    const ready = await get(server, '/health/ready')
    assert.is(ready.status, 503)
    assert.equal(ready.body.reasons, ['worker: shutting down'])
    assert.is((await get(server, '/health/live')).status, 200)
  })
})

Health('a stalled event loop fails /health/live', async (ctx) => {
  const { options } = await checks(ctx)
  // a 300 ms threshold and a 900 ms stall: a busy machine's own hiccups stay below the one, far below the other
  await serve({ ...options, eventLoopStallMs: 300 }, async (server) => {
    await eventually('live before the stall', async () => (await get(server, '/health/live')).status === 200)
    const until = Date.now() + 900
    while (Date.now() < until) { /* stall the loop on purpose */ }
    const live = await get(server, '/health/live')
    assert.is(live.status, 503)
    assert.ok(live.body.eventLoopLagMs >= 300, JSON.stringify(live.body))
    await eventually('recovers once the loop runs freely again', async () => (await get(server, '/health/live')).status === 200)
  })
})

Health('/metrics serves the exposition and counts every health check; other paths and methods are refused', async (ctx) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const { options } = await checks(ctx)
  try {
    await serve({ ...options, metrics }, async (server) => {
      await get(server, '/health')
      await get(server, '/health')
      const text = (await get(server, '/metrics')).body as string
      for (const component of ['database', 'redis', 'queue', 'worker']) {
        assert.ok(text.includes(`webhook_health_checks_total{component="${component}",status="healthy"} 2`), component)
        assert.ok(text.includes(`webhook_health_check_duration_seconds_count{component="${component}"} 2`), component)
      }
      assert.is((await get(server, '/nope')).status, 404)
      const post = await fetch(`${server.url}/health`, { method: 'POST' })
      assert.is(post.status, 405)
      assert.is(post.headers.get('allow'), 'GET, HEAD')
      await post.text()
      const head = await fetch(`${server.url}/health/live`, { method: 'HEAD' })
      assert.is(head.status, 200)
      assert.is(await head.text(), '')
    })
    await serve(options, async (server) => assert.is((await get(server, '/metrics')).status, 404))
  } finally {
    metrics.close()
  }
})

Health('a password in a failing check\'s error is masked; bad options are named', async (ctx) => {
  const { options } = await checks(ctx)
  const checkDatabase = () => Promise.reject(new Error('cannot connect to postgres://app:hunter2@db:5432/hooks'))
  await serve({ ...options, checkDatabase }, async (server) => {
    const res = await get(server, '/health')
    assert.is(res.body.components.database.error, 'cannot connect to postgres://app:****@db:5432/hooks')
    assert.not.ok(JSON.stringify(res.body).includes('hunter2'))
  })
  try {
    createHealth({ ...options, timeoutMs: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /createHealth: "timeoutMs" must be a positive number; got 0/)
  }
  const health = createHealth(options)
  try {
    await startHealthServer(health, { port: 70000 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /^HEALTH_ENDPOINT port must be an integer/)
  } finally {
    health.close()
  }
})

Health('the health port caps connections and cuts off a client slow to send its headers; probes still get through', async (ctx) => {
  const { options } = await checks(ctx)
  const health = createHealth(options)
  const server = await startHealthServer(health, { port: 0, host: '127.0.0.1', maxConnections: 3, headersTimeoutMs: 500 })
  const open = async () => {
    const sock = connect(server.port, '127.0.0.1')
    sock.on('error', () => {})
    sock.resume() // read what the server sends (its 408), so its close reaches us
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()))
    const started = Date.now()
    const closed = new Promise<number>((resolve) => sock.once('close', () => resolve(Date.now() - started)))
    return { sock, closed }
  }
  try {
    // three clients that never finish their headers hold every slot; a fourth is closed at once
    const held = await Promise.all([open(), open(), open()])
    for (const h of held) h.sock.write('GET /health HTTP/1.1\r\nHost: x\r\n')
    await sleep(50)
    const extra = await open()
    assert.ok(await Promise.race([extra.closed, sleep(1000).then(() => Infinity)]) < 1000, 'the connection over the cap was closed')
    // the slow ones are cut off after headersTimeoutMs, and then a probe is served again
    const cut = await Promise.race([Promise.all(held.map((h) => h.closed)), sleep(4000).then(() => undefined)])
    assert.ok(cut && cut.every((ms) => ms >= 400 && ms < 2500), `slow clients closed after ${JSON.stringify(cut)} ms (limit 500 ms)`)
    assert.is((await get(server, '/health/live')).status, 200)
  } finally {
    await server.close()
    health.close()
  }
  const unused = createHealth(options)
  try {
    await startHealthServer(unused, { port: 0, maxConnections: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"maxConnections" must be an integer of at least 1; got 0/)
  } finally {
    unused.close()
  }
})

Health.run()
