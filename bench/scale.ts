/**
 * Scale-out: how many events/s N worker processes (`hookstream run --role worker`, one consumer group) store,
 * on one Redis and on a 3-master Redis Cluster with the stream split into partitions. Each run pre-loads the
 * same events into a fresh stream, starts the workers, and times the stored rows by PostgreSQL's own clock
 * (first to last `processed_at`), so process start-up is not counted; wall time with start-up is shown too.
 *
 *   npm run bench:scale                                   # 60,000 GitHub events; 1, 2, 3 workers; single Redis and cluster
 *   npm run bench:scale -- --events 20000 --workers 1,3 --no-cluster --env WORKER_BATCH_SIZE=500
 *
 * Writes bench/results/scale-<date>.md and .json.
 */
import { parseArgs } from 'node:util'
import type { Cluster } from 'ioredis'
import { openBenchEnv } from './bench-env.js'
import { BENCH_TOOL, commandCpuSince, cpuByCommand, cpuSeconds, machineTicks, startRole, stopAll, writeResults, type FleetProcess } from './fleet.js'
import { makeEvents, type PayloadKind } from './payloads.js'
import { streamKeys } from '../src/sources/keys.js'
import { mainStreamClient, StreamPartitions } from '../src/sources/partitions.js'
import type { RedisClient } from '../src/sources/stream-client.js'
import { startRedisCluster, type TestRedisCluster } from '../test/helpers/redis-cluster.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '60000' }, workers: { type: 'string', default: '1,2,3' }, payload: { type: 'string', default: 'github' },
    partitions: { type: 'string', default: '6' }, repeat: { type: 'string', default: '2' }, 'no-cluster': { type: 'boolean', default: false }, env: { type: 'string', multiple: true, default: [] },
  },
})
const events = Number(args.events)
const workerCounts = args.workers.split(',').map(Number)
const partitionCount = Number(args.partitions)
const repeat = Number(args.repeat)
const payload = args.payload as PayloadKind
const extraEnv = Object.fromEntries(args.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))

interface Row {
  setup: string; workers: number; events: number; perSec: number; wallSeconds: number; workerCpuUsPerEvent: number; machineBusyPct: number
  /** Cores used on average while the run lasted: the workers, PostgreSQL, Redis. */
  cores: { workers: number; postgres: number; redis: number }
  spread?: string
}

const env = await openBenchEnv()
let cluster: TestRedisCluster | undefined
let clusterClient: Cluster | undefined
const rows: Row[] = []
const started = new Date()
try {
  const setups: { name: string; redis: RedisClient; serviceEnv: Record<string, string>; partitions: number }[] = [
    { name: 'one Redis', redis: env.redis, serviceEnv: { REDIS_URL: env.redisUrl }, partitions: 1 },
  ]
  if (!args['no-cluster']) {
    cluster = await startRedisCluster({ masters: 3 })
    clusterClient = await cluster.client()
    setups.push({ name: `Redis Cluster, 3 masters, ${partitionCount} partitions`, redis: clusterClient,
      serviceEnv: { REDIS_CLUSTER_NODES: cluster.nodes.join(','), STREAM_PARTITIONS: String(partitionCount) }, partitions: partitionCount })
  }
  // the examples name only a few repositories; traffic of many repositories is what partitions spread
  const data = makeEvents(payload, events, 'x-').map((e, i) => ({ ...e, tool_id: BENCH_TOOL, repository: `bench/repo-${i % 64}` }))
  const runs = Array.from({ length: repeat }, () => setups.flatMap((setup) => workerCounts.map((workers) => ({ setup, workers })))).flat()
  for (const { setup, workers } of runs) {
    const prefix = `scale-${Date.now().toString(36)}:`
    const keys = streamKeys({ prefix })
    const stream = mainStreamClient({ redis: setup.redis, keys, count: setup.partitions })
    await stream.ensureGroup(keys.group, '0')
    const run = data.map((e) => ({ ...e, id: `${prefix}${e.id}` }))
    for (let i = 0; i < run.length; i += 1000) await stream.addMany(run.slice(i, i + 1000))
    let spread: string | undefined
    if (setup.partitions > 1) {
      const p = new StreamPartitions({ redis: setup.redis, keys, count: setup.partitions })
      const lengths = await Promise.all(p.streams.map(async (s) => (await s.info()).length))
      const masters = cluster ? new Set(await Promise.all(p.keys.map((k) => cluster!.masterOf(k.stream)))).size : 1
      spread = `partition lengths ${lengths.join('/')} on ${masters} masters`
    }
    await env.pool.query('TRUNCATE webhook_events')
    const serviceEnv = { ...setup.serviceEnv, DATABASE_URL: env.databaseUrl, STREAM_PREFIX: prefix, LOG_LEVEL: 'warn', ...extraEnv }
    const ticks0 = machineTicks()
    const servers0 = cpuByCommand(['postgres', 'redis-server'])
    const t0 = performance.now()
    const procs: FleetProcess[] = await Promise.all(Array.from({ length: workers }, (_, i) => startRole(`w${i + 1}`, 'worker', serviceEnv)))
    const cpu0 = procs.map((p) => cpuSeconds(p.svc.child.pid))
    try {
      const deadline = Date.now() + 600_000
      for (;;) {
        const n = Number((await env.pool.query('SELECT count(*) AS n FROM webhook_events')).rows[0].n)
        if (n >= events) break
        if (Date.now() > deadline) throw new Error(`scale: ${n} of ${events} stored after 10 min (${setup.name}, ${workers} workers)`)
        await new Promise((r) => setTimeout(r, 250))
      }
      const wallSeconds = (performance.now() - t0) / 1000
      const ticks = machineTicks()
      const servers = commandCpuSince(servers0, cpuByCommand(['postgres', 'redis-server']))
      const cpu = procs.reduce((a, p, i) => a + cpuSeconds(p.svc.child.pid) - cpu0[i]!, 0)
      const span = (await env.pool.query('SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, extract(epoch FROM max(processed_at) - min(processed_at)) AS s FROM webhook_events')).rows[0]
      if (span.n !== events || span.d !== events) throw new Error(`scale: ${span.n} rows, ${span.d} distinct, expected ${events}`)
      const row: Row = {
        setup: setup.name, workers, events, perSec: Math.round(events / Number(span.s)), wallSeconds: Math.round(wallSeconds * 10) / 10,
        workerCpuUsPerEvent: Math.round((cpu / events) * 1e6),
        cores: { workers: Math.round((cpu / wallSeconds) * 100) / 100, postgres: Math.round((servers.postgres! / wallSeconds) * 100) / 100,
          redis: Math.round((servers['redis-server']! / wallSeconds) * 100) / 100 },
        machineBusyPct: Math.round(((ticks.busy - ticks0.busy) / (ticks.total - ticks0.total)) * 100),
        ...(spread ? { spread } : {}),
      }
      rows.push(row)
      console.error(`scale: ${setup.name}, ${workers} worker(s): ${row.perSec} events/s (wall ${row.wallSeconds} s, ${row.workerCpuUsPerEvent} µs CPU/event in workers, machine ${row.machineBusyPct}% busy; cores workers ${row.cores.workers}, postgres ${row.cores.postgres}, redis ${row.cores.redis})${spread ? `; ${spread}` : ''}`)
    } finally {
      await stopAll(procs)
    }
  }
  // the median of the repeats per setup and worker count (runs interleave: all setups once, then again)
  const medians: Row[] = []
  for (const setup of setups) {
    for (const workers of workerCounts) {
      const same = rows.filter((r) => r.setup === setup.name && r.workers === workers).sort((a, b) => a.perSec - b.perSec)
      const mid = same[Math.floor((same.length - 1) / 2)]!
      medians.push({ ...mid, spread: `${same.map((r) => r.perSec.toLocaleString('en')).join(' / ')} ev/s${mid.spread ? `; ${mid.spread}` : ''}` })
    }
  }
  const base = medians.find((r) => r.workers === 1 && r.setup === 'one Redis') ?? medians[0]!
  const lines = [
    `# scale — ${started.toISOString()}`, '',
    `\`npm run bench:scale -- --events ${events} --workers ${args.workers} --repeat ${repeat} --payload ${payload}${args['no-cluster'] ? ' --no-cluster' : ` --partitions ${partitionCount}`}${args.env.map((e) => ` --env ${e}`).join('')}\` ` +
      `on ${env.servers}${cluster ? ' + a 3-master Redis Cluster (own redis-servers)' : ''}; ${process.version}; 2 cores shared by Redis, PostgreSQL and the workers.`, '',
    `Each run (${repeat} per row, interleaved; the row shows the lower median, the notes every run): ${events.toLocaleString('en')} ${payload} events (over 64 repositories) pre-loaded into a fresh stream, N \`hookstream run --role worker\` processes (service defaults${args.env.length ? ` + ${args.env.join(', ')}` : ''}) in one group; ` +
      'events/s = rows / (last − first `processed_at`); every event stored exactly once (checked).', '',
    '| setup | workers | events/s | vs 1 worker, one Redis | wall s (with start-up) | worker CPU µs/event | machine busy | cores used: workers / PostgreSQL / Redis | notes |',
    '|---|--:|--:|--:|--:|--:|--:|---|---|',
    ...medians.map((r) => `| ${r.setup} | ${r.workers} | ${r.perSec.toLocaleString('en')} | ${(r.perSec / base.perSec).toFixed(2)}× | ${r.wallSeconds} | ${r.workerCpuUsPerEvent} | ${r.machineBusyPct}% | ${r.cores.workers} / ${r.cores.postgres} / ${r.cores.redis} | ${r.spread ?? ''} |`),
  ]
  writeResults('scale', started, lines.join('\n'), { events, payload, repeat, env: extraEnv, rows, medians })
} finally {
  clusterClient?.disconnect()
  await cluster?.stop()
  await env.close()
}
