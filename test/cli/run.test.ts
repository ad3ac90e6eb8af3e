import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID, createHmac } from 'node:crypto'
import { Redis } from 'ioredis'
import pg from 'pg'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { parseTool } from '../../src/core/tool.js'
import { deliverySeen, streamKeys, trimLeaseKey } from '../../src/sources/keys.js'
import { PartitionedStreamClient, StreamPartitions } from '../../src/sources/partitions.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { sharedPostgres, sharedRedis, startRedis } from '../helpers/servers.js'
import { eventually, makeEvent, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { startReceiver } from '../helpers/pipeline.js'
import { startServiceProcess } from '../helpers/service-process.js'
import { runCli } from '../helpers/cli-process.js'
import { release } from '../helpers/release.js'

interface Ctx { redis: Redis; db: Db; env: Record<string, string>; stream: StreamClient; group: string }
const Run = suite<Ctx>('hookstream run (process)', {} as Ctx)

Run.before.each(async (ctx) => {
  const redisUrl = (await sharedRedis()).url
  const databaseUrl = await (await sharedPostgres()).createDatabase()
  const prefix = `svc-${randomUUID()}:`
  ctx.env = { REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, STREAM_PREFIX: prefix, WORKER_CONSUMER_NAME: 'svc-worker' }
  ctx.redis = new Redis(redisUrl)
  ctx.db = await createDb({ url: databaseUrl })
  await migrateToLatest(ctx.db.db)
  const keys = streamKeys({ prefix })
  ctx.group = keys.group
  ctx.stream = new StreamClient({ redis: ctx.redis, stream: keys.stream })
})
Run.after.each((ctx) => release(ctx, { redis: (r) => r.disconnect(), db: (d) => d.close() }))

const count = async (db: Db, table: 'webhook_events' | 'webhook_dlq' = 'webhook_events') =>
  Number((await db.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
const pendingOf = async ({ stream, group }: Ctx) => (await stream.info()).groups.find((g) => g.name === group)?.pending ?? 0

const TOOLS = 'tools:\n  - { id: store-tool, provider: github, secret: s3cret-value, tenant_id: acme }\n'

Run('a signed webhook posted to ingest is stored by the worker, then trimmed from the stream; SIGTERM exits 0', withTimeLimit(180_000, async (ctx) => {
  const svc = await startServiceProcess({ ...ctx.env, STREAM_TRIM_INTERVAL: '200ms', WORKER_IDEMPOTENCY_TTL: '1h' }, TOOLS)
  try {
    const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'acme/api' } })
    const sig = createHmac('sha256', 's3cret-value').update(body).digest('hex')
    const delivery = randomUUID()
    const res = await fetch(`${svc.ingestUrl}/webhooks/store-tool`, { method: 'POST', body, headers: {
      'content-type': 'application/json', 'x-hub-signature-256': `sha256=${sig}`, 'x-github-event': 'push', 'x-github-delivery': delivery } })
    assert.is(res.status, 202)
    await eventually('row stored', async () => (await count(ctx.db)) === 1)
    const row = await ctx.db.db.selectFrom('webhook_events').selectAll().executeTakeFirstOrThrow()
    assert.equal([row.id, row.event_type, row.repository, row.tenant_id], [delivery, 'webhook.github.push', 'acme/api', 'acme'])
    // the row is written before settle turns the 60 s claim into the done marker and acks: wait for the ack
    await eventually('acked', async () => (await pendingOf(ctx)) === 0, 30_000)
    // the delivery id is remembered for the window (WORKER_IDEMPOTENCY_TTL) in ingest's delivery-seen set; the
    // worker adds no key of its own (the primary key makes the store idempotent)
    const keys = streamKeys({ prefix: ctx.env.STREAM_PREFIX! })
    const seen = deliverySeen(keys, 'store-tool', delivery, 3600)
    // a quarter-window may have turned since the request: then it is in the hash before
    const bucket = (await ctx.redis.call('HEXISTS', seen.buckets[0], seen.field)) === 1 ? seen.buckets[0] : seen.buckets[1]
    assert.is(await ctx.redis.call('HEXISTS', bucket, seen.field), 1)
    const ttl = await ctx.redis.ttl(bucket)
    assert.ok(ttl > (bucket === seen.buckets[0] ? 3500 : 2600) && ttl <= 4500, `ttl ${ttl}`)
    assert.is(await ctx.redis.exists(`${keys.idempotencyPrefix}store-tool:${delivery}`), 0)
    // acked, so the worker's trimmer removes it from the stream within an interval or two
    await eventually('stream trimmed', async () => (await ctx.redis.xlen(ctx.stream.stream)) === 0, 30_000)
    const metrics = await (await fetch(`${svc.healthUrl}/metrics`)).text()
    assert.match(metrics, /^webhook_stream_trimmed_entries_total 1$/m)
    // the worker trims under the stream's lease (3 intervals long), so a second worker would skip its turns
    const leaseMs = await ctx.redis.pttl(trimLeaseKey(ctx.stream.stream))
    assert.ok(leaseMs > 0 && leaseMs <= 600, `trim lease held, ${leaseMs} ms left`)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
  assert.is(await ctx.redis.exists(trimLeaseKey(ctx.stream.stream)), 0, 'the stop gave the trim lease up')
}))

Run('a looping transform does not stall the process: /health/live answers, other events are stored, SIGTERM exits 0', async (ctx) => {
  const yaml = `${TOOLS}  - { id: loop, provider: github, secret: s3cret-value, processing_mode: transform_and_store, ` +
    `transform: "($f := function($n){ $f($n) }; $f(1))" }\n`
  const svc = await startServiceProcess(ctx.env, yaml)
  let exit: unknown
  try {
    await ctx.stream.addMany([makeEvent({ tool_id: 'loop' }), ...Array.from({ length: 50 }, () => makeEvent({ tool_id: 'store-tool' }))])
    for (let i = 0; i < 5; i += 1) {
      const live = await fetch(`${svc.healthUrl}/health/live`, { signal: AbortSignal.timeout(2000) })
      assert.is(live.status, 200)
    }
    await eventually('50 stored', async () => (await count(ctx.db)) === 50, 15_000)
    await eventually('the looping event dead-lettered', async () => (await count(ctx.db, 'webhook_dlq')) === 1, 15_000)
    const dlq = await ctx.db.db.selectFrom('webhook_dlq').select('error_code').executeTakeFirstOrThrow()
    assert.is(dlq.error_code, 'TRANSFORM_TIMEOUT')
  } finally {
    svc.child.kill('SIGTERM')
    exit = await Promise.race([svc.exited, new Promise((r) => setTimeout(() => r('still running 15 s after SIGTERM'), 15_000))])
    // a process that ignored SIGTERM must not outlive the test
    if (svc.child.exitCode === null && svc.child.signalCode === null) svc.child.kill('SIGKILL')
  }
  assert.is(exit, 0)
})

Run('a tool saved under another HOOKSTREAM_ENCRYPTION_KEY answers 503 TOOL_UNREADABLE alone; ready reports it, other tools accept', async (ctx) => {
  await new ToolStore({ db: ctx.db.db, encryptionKey: 'the key this tool was saved with' })
    .upsert(parseTool({ id: 'db-tool', provider: 'github', secret: 's3cret-value' }), 'test')
  const svc = await startServiceProcess({ ...ctx.env, HOOKSTREAM_ENCRYPTION_KEY: 'a different key of this process' }, TOOLS)
  const post = (tool: string) => {
    const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'acme/api' } })
    const sig = createHmac('sha256', 's3cret-value').update(body).digest('hex')
    return fetch(`${svc.ingestUrl}/webhooks/${tool}`, { method: 'POST', body, headers: {
      'content-type': 'application/json', 'x-hub-signature-256': `sha256=${sig}`, 'x-github-event': 'push', 'x-github-delivery': randomUUID() } })
  }
  try {
    assert.is((await post('store-tool')).status, 202)
    const broken = await post('db-tool')
    assert.is(broken.status, 503)
    assert.is(((await broken.json()) as { error: { code: string } }).error.code, 'TOOL_UNREADABLE')
    const ready = await fetch(`${svc.healthUrl}/health/ready`)
    assert.is(ready.status, 200)
    const readyBody = (await ready.json()) as { components: { tools: { status: string; unreadable: string[] } } }
    assert.equal([readyBody.components.tools.status, readyBody.components.tools.unreadable], ['degraded', ['db-tool']])
    const health = (await (await fetch(`${svc.healthUrl}/health`)).json()) as { status: string; components: { tools: { status: string } } }
    assert.equal([health.status, health.components.tools.status], ['degraded', 'degraded'])
    assert.match(await (await fetch(`${svc.healthUrl}/metrics`)).text(), /^webhook_tool_load_errors\{tool_id="db-tool"\} 1$/m)
    await new Promise((r) => setTimeout(r, 2500))
    assert.is(svc.output().split('a stored tool cannot be loaded').length - 1, 1, 'logged once, not per refresh')
    assert.ok(!svc.output().includes('s3cret-value'))
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
})

Run('a worker wedged on a destination that never answers is reported stalled by readiness and /health; an idle one is not', async (ctx) => {
  const sockets: Socket[] = []
  const silent = createNetServer((socket) => { sockets.push(socket) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/hook`
  const yaml = `tools:\n  - { id: fwd, provider: github, secret: s3cret-value, processing_mode: store_and_forward, forward_url: "${url}", forward_secret: "whsec_Zm9yd2FyZC1zaWduaW5nLWtleS1vZi10ZXN0cw==" }\n`
  const svc = await startServiceProcess({ ...ctx.env, WORKER_STALL_TIMEOUT: '2s', FORWARD_TIMEOUT: '1h', FORWARD_ALLOW_PRIVATE: '127.0.0.1/32' }, yaml)
  try {
    await new Promise((r) => setTimeout(r, 2500))
    assert.is((await fetch(`${svc.healthUrl}/health/ready`)).status, 200, 'idle with nothing pending is not a stall')
    await ctx.stream.add(makeEvent({ tool_id: 'fwd' }))
    await eventually('the destination holds the request', () => sockets.length === 1, 5000)
    await eventually('readiness fails', async () => (await fetch(`${svc.healthUrl}/health/ready`)).status === 503, 10_000)
    const ready = (await (await fetch(`${svc.healthUrl}/health/ready`)).json()) as { reasons: string[] }
    assert.match(ready.reasons.join('; '), /worker "svc-worker" is stalled: its oldest pending entry is \d+ s old/)
    const health = (await (await fetch(`${svc.healthUrl}/health`)).json()) as { status: string; components: { queue: { status: string } } }
    assert.equal([health.status, health.components.queue.status], ['unhealthy', 'unhealthy'])
  } finally {
    svc.child.kill('SIGKILL')
    await svc.exited
    for (const socket of sockets) socket.destroy()
    await new Promise((r) => silent.close(r))
  }
})

Run('with a Redis that keeps nothing on disk /health shows redis durability "none" (degraded) and a warning; REDIS_REQUIRE_DURABLE=true refuses to start', async (ctx) => {
  const svc = await startServiceProcess(ctx.env, TOOLS)
  try {
    const health = (await (await fetch(`${svc.healthUrl}/health`)).json()) as { status: string; components: { redis: { status: string; durability: string } } }
    assert.equal([health.status, health.components.redis.status, health.components.redis.durability], ['degraded', 'degraded', 'none'])
    assert.is((await fetch(`${svc.healthUrl}/health/ready`)).status, 200)
    assert.match(svc.output(), /Redis keeps nothing on disk .*a Redis restart loses every accepted event/)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
  try {
    await startServiceProcess({ ...ctx.env, REDIS_REQUIRE_DURABLE: 'true' }, TOOLS)
    assert.unreachable('started without a durable Redis')
  } catch (err) {
    assert.match((err as Error).message, /exited early[\s\S]*REDIS_REQUIRE_DURABLE is true, but Redis keeps nothing on disk/)
  }
})

Run('with a Redis that evicts any key when full (allkeys-lru) /health is degraded and the start warns; REDIS_REQUIRE_DURABLE=true refuses to start', async (ctx) => {
  const server = await startRedis({ appendonly: true, args: ['--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru'] })
  try {
    const env = { ...ctx.env, REDIS_URL: server.url }
    const svc = await startServiceProcess(env, TOOLS)
    try {
      const health = (await (await fetch(`${svc.healthUrl}/health`)).json()) as { status: string; components: { redis: { status: string; reasons?: string[] } } }
      assert.equal([health.status, health.components.redis.status], ['degraded', 'degraded'])
      assert.match((health.components.redis.reasons ?? []).join('; '), /maxmemory-policy allkeys-lru.*queued events/)
      assert.match(svc.output(), /Redis evicts any key when it is full \(maxmemory-policy allkeys-lru/)
    } finally {
      svc.child.kill('SIGTERM')
    }
    assert.is(await svc.exited, 0)
    try {
      await startServiceProcess({ ...env, REDIS_REQUIRE_DURABLE: 'true' }, TOOLS)
      assert.unreachable('started with a Redis that can evict the stream')
    } catch (err) {
      assert.match((err as Error).message, /exited early[\s\S]*REDIS_REQUIRE_DURABLE is true, but Redis evicts any key when it is full[\s\S]*maxmemory-policy noeviction/)
    }
  } finally {
    await server.stop()
  }
})

Run('kill -9 of the worker mid-run, then a restart: every event stored exactly once', withTimeLimit(300_000, async (ctx) => {
  const events = Array.from({ length: 6000 }, () => makeEvent({ tool_id: 'store-tool' }))
  for (let i = 0; i < events.length; i += 1000) await ctx.stream.addMany(events.slice(i, i + 1000))
  const first = await startServiceProcess({ ...ctx.env, WORKER_BATCH_SIZE: '200' }, TOOLS, ['--role', 'worker'])
  await eventually('some stored', async () => (await count(ctx.db)) >= 500, 30_000)
  first.child.kill('SIGKILL')
  assert.is(await first.exited, 'SIGKILL')
  const storedAtKill = await count(ctx.db)
  assert.ok(storedAtKill < 6000, `the kill landed mid-run (${storedAtKill} stored)`)
  const second = await startServiceProcess({ ...ctx.env, WORKER_BATCH_SIZE: '200' }, TOOLS, ['--role', 'worker'])
  try {
    await progressTo('all stored', () => count(ctx.db), 6000)
    await eventually('nothing pending', async () => (await pendingOf(ctx)) === 0, 20_000)
    assert.is(await count(ctx.db, 'webhook_dlq'), 0)
    const ids = await ctx.db.db.selectFrom('webhook_events').select('id').execute()
    assert.is(new Set(ids.map((r) => r.id)).size, 6000)
  } finally {
    second.child.kill('SIGTERM')
  }
  assert.is(await second.exited, 0)
}))

Run('SIGTERM with 1,000 events in flight drains, exits 0, and a restart finishes with nothing missing or doubled', withTimeLimit(300_000, async (ctx) => {
  const receiver = await startReceiver(async () => { await new Promise((r) => setTimeout(r, 50)); return 200 })
  try {
    const yaml = `tools:\n  - { id: fwd, provider: github, secret: s3cret-value, processing_mode: store_and_forward, forward_url: "${receiver.url}", forward_secret: "whsec_Zm9yd2FyZC1zaWduaW5nLWtleS1vZi10ZXN0cw==" }\n`
    const events = Array.from({ length: 3000 }, () => makeEvent({ tool_id: 'fwd' }))
    for (let i = 0; i < events.length; i += 1000) await ctx.stream.addMany(events.slice(i, i + 1000))
    // a shutdown timeout no busy machine reaches: this test is about the drain, the timeout path is documented
    // (events stay pending) and was what a 20 s timeout met on a loaded 2-core box
    const env = { ...ctx.env, WORKER_BATCH_SIZE: '1000', WORKER_CONCURRENCY: '200', WORKER_SHUTDOWN_TIMEOUT: '150s', FORWARD_ALLOW_PRIVATE: '127.0.0.1/32' }
    const first = await startServiceProcess(env, yaml, ['--role', 'worker'])
    await eventually('in flight', async () => receiver.requests.length >= 100, 30_000)
    const inFlight = await pendingOf(ctx)
    assert.ok(inFlight >= 500, `pending when SIGTERM is sent: ${inFlight}`)
    first.child.kill('SIGTERM')
    assert.is(await first.exited, 0)
    assert.not.match(first.output(), /shutdown timeout reached/, `the drain finished within WORKER_SHUTDOWN_TIMEOUT: ${first.output().slice(-1500)}`)
    // drained: everything the pipeline was handed was finished and acked, and the read the stop found in progress
    // was let return (CLIENT UNBLOCK) and its entries processed too, so nothing is left pending
    assert.is(await pendingOf(ctx), 0, 'nothing pending after SIGTERM')
    const second = await startServiceProcess(env, yaml, ['--role', 'worker'])
    try {
      await progressTo('all forwarded', async () => Number((await ctx.db.db.selectFrom('webhook_events')
        .select((eb) => eb.fn.countAll<number>().as('n')).where('forwarded_at', 'is not', null).executeTakeFirstOrThrow()).n), 3000)
      assert.is(await count(ctx.db), 3000)
      assert.is(new Set(receiver.requests.map((r) => JSON.parse(r.body).id)).size, 3000)
      assert.is(receiver.requests.length, 3000, 'a graceful stop forwards nothing twice')
      assert.is(await count(ctx.db, 'webhook_dlq'), 0)
    } finally {
      second.child.kill('SIGTERM')
    }
    assert.is(await second.exited, 0)
  } finally {
    await receiver.close()
  }
}))

Run('--role ingest with STREAM_PARTITIONS=4: 40 queued events read 40 in webhook_queue_depth and webhook_consumer_lag', async (ctx) => {
  const partitions = new StreamPartitions({ redis: ctx.redis, keys: streamKeys({ prefix: ctx.env.STREAM_PREFIX as string }), count: 4 })
  const svc = await startServiceProcess({ ...ctx.env, STREAM_PARTITIONS: '4' }, TOOLS, ['--role', 'ingest'])
  try {
    await new PartitionedStreamClient(partitions).addMany(Array.from({ length: 40 }, (_, i) => makeEvent({ tool_id: 'store-tool', repository: `acme/r${i}` })))
    await eventually('the gauges see 40', async () => /^webhook_queue_depth 40$/m.test(await (await fetch(`${svc.healthUrl}/metrics`)).text()), 5000)
    assert.match(await (await fetch(`${svc.healthUrl}/metrics`)).text(), /^webhook_consumer_lag 40$/m)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
})

Run('/metrics exposes the database pool gauges the dashboard and HookstreamDatabasePoolExhausted read', withTimeLimit(120_000, async (ctx) => {
  const svc = await startServiceProcess(ctx.env, TOOLS, ['--role', 'worker'])
  try {
    const text = await (await fetch(`${svc.healthUrl}/metrics`)).text()
    // WORKER_CONCURRENCY's default gives the pool max(4, min(20, 8 × concurrency)) connections
    const max = Number(/^webhook_db_pool_max_connections (\d+)$/m.exec(text)?.[1])
    assert.ok(max >= 4 && max <= 20, `webhook_db_pool_max_connections ${max}`)
    const total = Number(/^webhook_db_pool_connections\{state="total"\} (\d+)$/m.exec(text)?.[1])
    assert.ok(total >= 1 && total <= max, `webhook_db_pool_connections{state="total"} ${total}`)
    assert.match(text, /^webhook_db_pool_connections\{state="idle"\} \d+$/m)
    assert.match(text, /^webhook_db_pool_connections\{state="active"\} \d+$/m)
    assert.match(text, /^webhook_db_pool_waiting \d+$/m)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
}))

Run('with STREAM_PARTITIONS=4, /health counts the events in flight in every partition the worker reads, as webhook_in_flight does', withTimeLimit(180_000, async (ctx) => {
  const prefix = ctx.env.STREAM_PREFIX as string
  const partitions = new StreamPartitions({ redis: ctx.redis, keys: streamKeys({ prefix }), count: 4 })
  const events = Array.from({ length: 40 }, (_, i) => makeEvent({ tool_id: 'store-tool', repository: `acme/r${i}` }))
  assert.is(new Set(events.map((e) => partitions.indexOf(e))).size, 4, 'events spread over all four partitions')
  const svc = await startServiceProcess({ ...ctx.env, STREAM_PARTITIONS: '4' }, TOOLS, ['--role', 'worker'])
  // the INSERTs wait for this lock, so every event read stays in flight until it is released
  const locker = new pg.Client({ connectionString: ctx.env.DATABASE_URL })
  await locker.connect()
  try {
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE')
    await new PartitionedStreamClient(partitions).addMany(events)
    const inFlightMetric = async () => Number(/^webhook_in_flight (\d+)$/m.exec(await (await fetch(`${svc.healthUrl}/metrics`)).text())?.[1])
    await eventually('all 40 events in flight', async () => (await inFlightMetric()) === 40, 30_000)
    const health = await (await fetch(`${svc.healthUrl}/health`)).json() as { components: { worker: { inFlight: number } } }
    assert.is(health.components.worker.inFlight, 40)
    await locker.query('ROLLBACK')
    await eventually('all 40 stored', async () => (await count(ctx.db)) === 40, 30_000)
  } finally {
    await locker.end()
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
}))

Run('with STREAM_PARTITIONS=4 and WORKER_PARTITIONS=0-1 the worker trims the two partitions it reads; the unread ones keep their entries', withTimeLimit(180_000, async (ctx) => {
  const prefix = ctx.env.STREAM_PREFIX as string
  const partitions = new StreamPartitions({ redis: ctx.redis, keys: streamKeys({ prefix }), count: 4 })
  const events = Array.from({ length: 40 }, (_, i) => makeEvent({ tool_id: 'store-tool', repository: `acme/r${i}` }))
  await new PartitionedStreamClient(partitions).addMany(events)
  const read = events.filter((e) => partitions.indexOf(e) <= 1).length
  assert.ok(read > 0 && read < 40, `events spread over the partitions (${read} of 40 in 0-1)`)
  const lengths = () => Promise.all(partitions.keys.map((k) => ctx.redis.xlen(k.stream)))
  const before = await lengths()
  const svc = await startServiceProcess({ ...ctx.env, STREAM_PARTITIONS: '4', WORKER_PARTITIONS: '0-1', STREAM_TRIM_INTERVAL: '200ms' },
    TOOLS, ['--role', 'worker'])
  try {
    await eventually('partitions 0-1 stored', async () => (await count(ctx.db)) === read)
    await eventually('partitions 0-1 trimmed', async () => { const [a, b] = await lengths(); return a === 0 && b === 0 }, 3000)
    assert.equal((await lengths()).slice(2), before.slice(2))
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0)
}))

Run('a listen address another process holds stops startup with exit 1 naming the setting, not a stack trace', async (ctx) => {
  const busy = createNetServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  const port = (busy.address() as AddressInfo).port
  try {
    for (const [key, env] of [
      ['HEALTH_ENDPOINT', { HEALTH_ENDPOINT: `127.0.0.1:${port}`, ADMIN_ADDR: 'off' }],
      ['HTTP_ADDR', { HTTP_ADDR: `127.0.0.1:${port}`, HEALTH_ENDPOINT: '127.0.0.1:0', ADMIN_ADDR: 'off' }],
      ['ADMIN_ADDR', { ADMIN_ADDR: `127.0.0.1:${port}`, ADMIN_TOKEN: 'admin-token-0123456789abcdef', HTTP_ADDR: '127.0.0.1:0', HEALTH_ENDPOINT: '127.0.0.1:0' }],
    ] as const) {
      const r = await runCli(['run', '--role', key === 'HEALTH_ENDPOINT' ? 'worker' : 'ingest'], { ...ctx.env, ...env })
      assert.is(r.code, 1, r.stderr)
      assert.match(r.stderr, new RegExp(`hookstream run: ${key} is 127\\.0\\.0\\.1:${port}, which is in use already \\(EADDRINUSE\\); stop the process listening there`))
      assert.not.match(r.stderr, /\n\s+at /, 'no stack trace')
    }
  } finally {
    busy.close()
  }
})

Run.run()
