import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { Agent, createServer, request, type Server } from 'node:http'
import type { Cluster } from 'ioredis'
import type { Subscription } from 'rxjs'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { createIngestHandler } from '../../src/http/ingest.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { streamCommand } from '../../src/cli/commands/stream.js'
import type { CliIO } from '../../src/cli/command.js'
import { webhookPipeline, type WebhookEnvelope } from '../../src/pipelines/webhook.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { streamKeys } from '../../src/sources/keys.js'
import { PartitionedStreamClient, StreamPartitions } from '../../src/sources/partitions.js'
import { parkInRedis, startDelayedRetries } from '../../src/sources/delayed-retries.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import type { Envelope } from '../../src/core/envelope.js'
import { sharedPostgres } from '../helpers/servers.js'
import { startServiceProcess } from '../helpers/service-process.js'
import { githubDelivery, toolsYaml } from './fixture.js'
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js'
import { entryEvent, makeEvent, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { queueStatsProvider } from '../../src/observability/queue-stats-provider.js'


interface Ctx { cluster: TestRedisCluster; redis: Cluster }
const Clustered = suite<Ctx>('redis cluster partitions', {} as Ctx)
Clustered.before(async (ctx) => {
  ctx.cluster = await startRedisCluster({ masters: 3 })
  ctx.redis = await ctx.cluster.client()
})
Clustered.after(async (ctx) => {
  ctx.redis?.disconnect()
  await ctx.cluster?.stop()
})

const SECRET = 'cluster-secret'
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
async function rows(db: Db): Promise<{ n: number; distinct: number }> {
  const r = await db.db.selectFrom('webhook_events')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.count<number>('id').distinct().as('distinct')]).executeTakeFirstOrThrow()
  return { n: Number(r.n), distinct: Number(r.distinct) }
}
async function newDb(): Promise<Db> {
  const db = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(db.db)
  return db
}

Clustered('20,000 webhooks through ingest land on partitions on several masters and are stored exactly once', withTimeLimit(900_000, async ({ cluster, redis }) => {
  const started = Date.now()
  const keys = streamKeys({ prefix: `cl-${randomUUID()}:` })
  const partitions = new StreamPartitions({ redis, keys, count: 8 })
  const masters = new Set(await Promise.all(partitions.keys.map((k) => cluster.masterOf(k.stream))))
  assert.ok(masters.size > 1, `8 partitions on ${masters.size} master(s)`)
  const tool = parseTool({ id: 'gh', provider: 'github', secret: SECRET, tenant_id: 'acme' })
  const ingest = createIngestHandler({
    tools: { get: async (id) => (id === tool.id ? tool : undefined) },
    stream: new StreamClient({ redis, stream: keys.stream }), redis, keys, partitions,
  })
  const http: RunningHttpServer = await startHttpServer('127.0.0.1:0', createRouter([{ method: 'POST', path: '/webhooks/:toolId', handler: ingest }]))
  const db = await newDb()
  let sub: Subscription | undefined
  try {
    // the worker runs while ingest is still taking webhooks, as in production
    const settled: WebhookEnvelope[] = []
    sub = webhookPipeline({
      redis, db: db.db, tools: { get: async (id) => (id === tool.id ? tool : undefined) }, forwardSink: new ForwardSink(),
      consumer: 'cluster-worker', keys, partitions: partitions.keys, batchSize: 500, blockMs: 200,
      onSettled: (env) => settled.push(env),
    }).subscribe()
    const total = 20_000
    const deliveries: string[] = []
    // node:http with keep-alive costs the client less CPU per request than fetch, leaving more for ingest itself
    const agent = new Agent({ keepAlive: true, maxSockets: 48 })
    const post = (i: number, delivery: string) => new Promise<{ status: number; json: { duplicate?: boolean } }>((resolve, reject) => {
      const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: `acme/r${i % 200}` }, i })
      const req = request(`${http.url}/webhooks/gh`, { method: 'POST', agent, headers: {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-github-event': 'push', 'x-github-delivery': delivery,
        'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
      } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(body)
    })
    let next = 0
    const statuses = new Map<number, number>()
    await Promise.all(Array.from({ length: 48 }, async () => {
      while (next < total) {
        const i = next++
        const delivery = randomUUID()
        deliveries[i] = delivery
        const { status } = await post(i, delivery)
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      }
    }))
    assert.equal([...statuses], [[202, total]])
    const ingestMs = Date.now() - started
    // a re-sent delivery is recognised through its partition's delivery-seen key
    const again = await post(7, deliveries[7] as string)
    assert.is(again.json.duplicate, true)
    agent.destroy()
    const lengths = await Promise.all(partitions.streams.map(async (s) => (await s.info()).length))
    assert.is(lengths.reduce((a, b) => a + b, 0), total, 'every accepted webhook is on exactly one partition')
    assert.ok(lengths.every((n) => n > 0), `every partition got events: ${lengths.join(',')}`)

    await progressTo(`${total} settled`, () => settled.length, total)
    assert.equal(await rows(db), { n: total, distinct: total })
    assert.equal(new Set(settled.map((e) => e.outcome)), new Set(['stored']))
    await until('all acked', async () => {
      const infos = await Promise.all(partitions.streams.map((s) => s.info()))
      return infos.every((i) => (i.groups[0]?.pending ?? 1) === 0)
    }, 5000)
    console.log(`  20,000 events: ingest ${ingestMs} ms, total ${Date.now() - started} ms over ${masters.size} masters`)
  } finally {
    sub?.unsubscribe()
    await http.close()
    await db.close()
  }
}))

interface Receiver { url: string; arrivals: { id: string; repository: string; seq: number }[]; close(): Promise<void> }
async function startReceiver(): Promise<Receiver> {
  const arrivals: Receiver['arrivals'] = []
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const event = JSON.parse(Buffer.concat(chunks).toString()) as { id: string; repository: string; payload: { seq: number } }
    arrivals.push({ id: event.id, repository: event.repository, seq: event.payload.seq })
    // answer after a random pause, so later requests overtake earlier ones unless the pipeline keeps order
    setTimeout(() => res.writeHead(200).end('ok'), Math.floor(Math.random() * 3))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, arrivals,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

Clustered('with orderBy repository, 1,000 events per repository over 20 repositories arrive in per-repository order', withTimeLimit(900_000, async ({ redis }) => {
  const keys = streamKeys({ prefix: `ord-${randomUUID()}:` })
  const partitions = new StreamPartitions({ redis, keys, count: 4 })
  const receiver = await startReceiver()
  const tool: ToolConfig = parseTool({ id: 'fwd', provider: 'github', secret: SECRET, tenant_id: 'acme', processing_mode: 'store_and_forward', forward_url: receiver.url })
  const db = await newDb()
  let sub: Subscription | undefined
  try {
    const perRepo = 1000
    const repos = 20
    const byPartition = new Map<number, Parameters<StreamClient['addMany']>[0][number][]>()
    for (let seq = 0; seq < perRepo; seq++) {
      for (let r = 0; r < repos; r++) {
        const event = {
          id: randomUUID(), event_type: 'webhook.github.push', repository: `acme/r${r}`, tenant_id: 'acme', tool_id: 'fwd',
          payload: { seq }, timestamp: new Date().toISOString(), retry_count: 0,
        }
        const p = partitions.indexOf(event)
        byPartition.set(p, [...(byPartition.get(p) ?? []), event])
      }
    }
    for (const [p, events] of byPartition) {
      for (let i = 0; i < events.length; i += 1000) await partitions.streams[p]!.addMany(events.slice(i, i + 1000))
    }
    const settled: WebhookEnvelope[] = []
    sub = webhookPipeline({
      redis, db: db.db, tools: { get: async (id) => (id === tool.id ? tool : undefined) },
      forwardSink: new ForwardSink({ perDestinationConcurrency: 64 }),
      consumer: 'ordered-worker', keys, partitions: partitions.keys, batchSize: 200, blockMs: 200,
      orderBy: (env) => env.message.event.repository, onSettled: (env) => settled.push(env),
    }).subscribe()
    const total = perRepo * repos
    const t0 = Date.now()
    await progressTo(`${total} forwarded`, () => settled.length, total)
    console.log(`  ordered: ${total} events forwarded in ${Date.now() - t0} ms`)
    assert.is(receiver.arrivals.length, total)
    const last = new Map<string, number>()
    let outOfOrder = 0
    for (const { repository, seq } of receiver.arrivals) {
      if (seq !== (last.get(repository) ?? -1) + 1) outOfOrder += 1
      last.set(repository, seq)
    }
    assert.is(outOfOrder, 0)
    assert.is(last.size, repos)
    assert.equal(new Set(settled.map((e) => e.outcome)), new Set(['forwarded']))
  } finally {
    sub?.unsubscribe()
    await receiver.close()
    await db.close()
  }
}))

Clustered('hookstream stream info with REDIS_CLUSTER_NODES shows totals and each partition', withTimeLimit(180_000, async ({ cluster, redis }) => {
  const prefix = `info-${randomUUID()}:`
  const partitions = new StreamPartitions({ redis, keys: streamKeys({ prefix }), count: 8 })
  const stream = new PartitionedStreamClient(partitions)
  await stream.ensureGroup('webhook_workers')
  await stream.addMany(Array.from({ length: 30 }, (_, i) => ({
    id: randomUUID(), event_type: 'webhook.github.push', repository: `acme/r${i}`, tenant_id: 'acme', tool_id: 'gh',
    payload: {}, timestamp: new Date().toISOString(), retry_count: 0,
  })))
  const out: string[] = []
  const err: string[] = []
  const io: CliIO = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env: {
    REDIS_CLUSTER_NODES: cluster.nodes.join(','), STREAM_PARTITIONS: '8', STREAM_PREFIX: prefix,
    DATABASE_URL: await (await sharedPostgres()).createDatabase(),
  } }
  const code = await streamCommand(['info'], { json: true }, io)
  assert.is(code, 0, err.join('\n'))
  const info = JSON.parse(out.join('\n')) as { length: number; groups: { lag: number }[]; partitions: { stream: string; length: number }[] }
  assert.is(info.length, 30)
  assert.is(info.groups[0]?.lag, 30)
  assert.equal(info.partitions.map((p) => p.stream), partitions.keys.map((k) => k.stream))
  assert.is(info.partitions.reduce((n, p) => n + p.length, 0), 30)
}))

Clustered('hookstream run on the cluster: ingest routes to 4 partitions, the worker stores each event once and forwards each repository in stream order, health is ready', withTimeLimit(300_000, async ({ cluster: testCluster, redis }) => {
  const prefix = `svc-${randomUUID()}:`
  const databaseUrl = await (await sharedPostgres()).createDatabase()
  const cluster = testCluster.nodes.join(',')
  const receiver = await startReceiver()
  const svc = await startServiceProcess({ REDIS_CLUSTER_NODES: cluster, STREAM_PARTITIONS: '4', STREAM_PREFIX: prefix, DATABASE_URL: databaseUrl,
    // the partition lengths below count what ingest wrote, so the worker's stream trim stays off here
    WORKER_ORDER_BY: 'repository', WORKER_BLOCK_TIMEOUT: '300ms', WORKER_CONSUMER_NAME: 'svc-1', STREAM_TRIM_INTERVAL: 'off',
    FORWARD_ALLOW_PRIVATE: '127.0.0.1/32' }, toolsYaml({ gh: receiver.url }))
  const db = await createDb({ url: databaseUrl, poolSize: 1 })
  try {
    const statuses: number[] = []
    for (let batch = 0; batch < 10; batch++) {
      statuses.push(...await Promise.all(Array.from({ length: 30 }, async (_, i) => {
        const d = githubDelivery('gh', randomUUID(), { ref: 'refs/heads/main', repository: { full_name: `acme/r${(batch * 30 + i) % 12}` } })
        return (await fetch(`${svc.ingestUrl}${d.path}`, { method: 'POST', body: d.body, headers: d.headers })).status
      })))
    }
    assert.ok(statuses.every((s) => s === 202), `statuses: ${[...new Set(statuses)].join(',')}`)
    const partitions = new StreamPartitions({ redis, keys: streamKeys({ prefix }), count: 4 })
    const lengths = await Promise.all(partitions.streams.map(async (s) => (await s.info()).length))
    assert.is(lengths.reduce((a, b) => a + b, 0), 300)
    assert.ok(lengths.filter((n) => n > 0).length > 1, `spread: ${lengths.join(',')}`)
    await progressTo('300 rows', async () => (await rows(db)).n, 300)
    assert.equal(await rows(db), { n: 300, distinct: 300 })
    await progressTo('300 forwarded', () => receiver.arrivals.length, 300)
    // each repository lives on one partition: its events arrive in that partition's stream order (the
    // receiver answers after a random pause, so without WORKER_ORDER_BY later ones overtake earlier ones)
    const streamOrder = new Map<string, string[]>()
    for (const s of partitions.streams) {
      for (const [, fields] of await redis.xrange(s.stream, '-', '+')) {
        const event = entryEvent(fields)
        streamOrder.set(event.repository, [...(streamOrder.get(event.repository) ?? []), event.id])
      }
    }
    assert.is(streamOrder.size, 12)
    for (const [repository, ids] of streamOrder) {
      assert.equal(receiver.arrivals.filter((a) => a.repository === repository).map((a) => a.id), ids, `arrival order of ${repository}`)
    }
    const health = await fetch(`${svc.healthUrl}/health`)
    assert.is(health.status, 200, await health.clone().text())
  } finally {
    svc.child.kill('SIGKILL')
    await svc.exited
    await db.close()
    await receiver.close()
  }
}))

Clustered('a parked retry goes back onto its own partition: the delayed set and the stream share a slot', withTimeLimit(180_000, async ({ redis }) => {
  const partitions = new StreamPartitions({ redis, keys: streamKeys({ prefix: `park-${randomUUID()}:` }), count: 8 })
  const keys = partitions.keys[5]!
  const fields = { event: JSON.stringify({ id: 'parked-1' }) }
  const env = { message: { stream: keys.stream, streamId: '1-1', fields, event: { id: 'parked-1' } }, attempts: 2 } as unknown as Envelope
  await parkInRedis({ redis, keys })(env, Date.now() - 1)
  const errors: Error[] = []
  const delayed = startDelayedRetries({ redis, keys, intervalMs: 20, onError: (err) => errors.push(err) })
  try {
    await until('the retry is back on its stream', async () => Number(await redis.call('XLEN', keys.stream)) === 1, 5000)
    assert.is(Number(await redis.call('ZCARD', keys.delayed)), 0)
    assert.equal(errors, [])
  } finally { await delayed.close() }
}))

Clustered('the queue gauges read every partition across the cluster\'s masters', async ({ redis }) => {
  const partitions = new StreamPartitions({ redis, keys: streamKeys({ prefix: `gauge-${randomUUID()}:` }), count: 6 })
  const stream = new PartitionedStreamClient(partitions)
  await stream.addMany(Array.from({ length: 60 }, (_, i) => makeEvent({ repository: `acme/r${i}` })))
  await stream.ensureGroup(partitions.base.group, '0')
  const stats = await queueStatsProvider({ stream: partitions.streams, group: partitions.base.group })()
  assert.equal([stats.depth, stats.lag, stats.oldestPendingAgeSeconds], [60, 60, 0])
  const metrics = createMetrics({ defaultMetrics: false })
  try {
    metrics.setQueueStats(queueStatsProvider({ stream: partitions.streams, group: partitions.base.group }))
    assert.match(await metrics.metricsText(), /^webhook_consumer_lag 60$/m)
  } finally {
    metrics.close()
  }
})

Clustered.run()
