/**
 * Soak: a steady rate of signed GitHub webhooks through real processes — `hookstream run --role ingest`, one
 * or more `--role worker` — into PostgreSQL, for minutes. Checks, at the end, that every accepted delivery is
 * stored exactly once (nothing lost, nothing twice, re-sent deliveries answered duplicate), nothing is pending
 * and nothing went to the DLQ; reports RSS of every process at start and end, and p99 ingest→stored latency
 * per minute.
 *
 *   npm run bench:soak                                     # 2,000/s for 10 min, 1 worker, GitHub payloads
 *   npm run bench:soak -- --rate 1000 --minutes 2 --workers 2 --payload 1kb --env WORKER_BATCH_SIZE=500
 *   npm run build && npm run bench:soak -- --compiled       # the processes run dist with plain node, as the image does
 *
 * Writes bench/results/soak-<date>.md and .json. Exit 1 when anything was lost or duplicated.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { openBenchEnv } from './bench-env.js'
import { BENCH_TOOL, commandCpuSince, cpuByCommand, cpuSeconds, rssMb, startRole, stopAll, writeResults, writeSignedBodies, type FleetProcess } from './fleet.js'
import type { PayloadKind } from './payloads.js'
import { streamKeys } from '../src/sources/keys.js'
import { nonStreamKeys, pipelined } from '../test/helpers/redis-memory.js'
import { StreamClient } from '../src/sources/stream-client.js'

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' }, minutes: { type: 'string', default: '10' }, workers: { type: 'string', default: '1' },
    payload: { type: 'string', default: 'github' }, env: { type: 'string', multiple: true, default: [] },
    'sample-seconds': { type: 'string', default: '10' }, compiled: { type: 'boolean', default: false },
  },
})
const rate = Number(args.rate)
const durationMs = Math.round(Number(args.minutes) * 60_000)
const workerCount = Number(args.workers)
const payload = args.payload as PayloadKind
const sampleMs = Number(args['sample-seconds']) * 1000
const extraEnv = Object.fromEntries(args.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))

interface Window { atS: number; sent: number; accepted: number; duplicates: number; failed: number; httpP50Ms: number; httpP99Ms: number }
interface Sample { atS: number; rssMb: Record<string, number>; cpuPct: Record<string, number>; backlog: number; streamLength: number; redisMb: number; redisKeys: number }
interface LoadResult {
  sent: number; answered: number; accepted: number; duplicates: number; resends: number; unexpectedDuplicates: number; acceptedTwice: number
  failed: number; total: number; unanswered: number; sendSeconds: number; failures: Record<string, number>
}

const env = await openBenchEnv()
const processes: FleetProcess[] = []
const started = new Date()
try {
  const prefix = `soak-${Date.now().toString(36)}:`
  const keys = streamKeys({ prefix })
  const serviceEnv = { REDIS_URL: env.redisUrl, DATABASE_URL: env.databaseUrl, STREAM_PREFIX: prefix, LOG_LEVEL: 'warn', ...extraEnv }
  processes.push(await startRole('ingest', 'ingest', serviceEnv, args.compiled))
  for (let i = 1; i <= workerCount; i++) processes.push(await startRole(`w${i}`, 'worker', serviceEnv, args.compiled))
  const ingestUrl = processes[0]!.svc.ingestUrl
  const stream = new StreamClient({ redis: env.redis, stream: keys.stream })
  const bodiesFile = writeSignedBodies(payload)
  const acceptedFile = join(tmpdir(), `hookstream-soak-${process.pid}.bin`)
  console.error(`soak: ${rate}/s for ${durationMs / 60_000} min, ${workerCount} worker process(es), ${payload} payloads; ${env.servers}`)

  // samples every sampleMs: RSS and CPU% of each process, backlog (lag + pending), stream length, Redis memory
  const samples: Sample[] = []
  const t0 = Date.now()
  const SERVERS = ['postgres', 'redis-server']
  const cpuNames = [...processes.map((p) => p.name), ...SERVERS]
  let lastServers = cpuByCommand(SERVERS)
  let lastCpu: Record<string, number> = { ...Object.fromEntries(processes.map((p) => [p.name, cpuSeconds(p.svc.child.pid)])), postgres: 0, 'redis-server': 0 }
  let lastAt = t0
  const sample = async () => {
    const info = await stream.info()
    const g = info.groups.find((x) => x.name === keys.group)
    const mem = /used_memory:(\d+)/.exec(String(await env.redis.call('INFO', 'memory')))
    const redisKeys = Number(await env.redis.call('DBSIZE'))
    const now = Date.now()
    const cpu: Record<string, number> = Object.fromEntries(processes.map((p) => [p.name, cpuSeconds(p.svc.child.pid)]))
    const servers = cpuByCommand(SERVERS)
    const serverSeconds = commandCpuSince(lastServers, servers)
    for (const n of SERVERS) cpu[n] = (lastCpu[n] ?? 0) + serverSeconds[n]!
    samples.push({
      atS: Math.round((now - t0) / 1000),
      rssMb: Object.fromEntries(processes.map((p) => [p.name, rssMb(p.svc.child.pid)])),
      cpuPct: Object.fromEntries(cpuNames.map((n) => [n, Math.round(((cpu[n]! - lastCpu[n]!) / ((now - lastAt) / 1000)) * 100)])),
      backlog: (g?.lag ?? 0) + (g?.pending ?? 0), streamLength: info.length, redisMb: Math.round(Number(mem?.[1] ?? NaN) / 1048576), redisKeys,
    })
    lastCpu = cpu
    lastServers = servers
    lastAt = now
  }
  await sample()
  const sampler = setInterval(() => { sample().catch((err) => console.error(`sample failed: ${(err as Error).message}`)) }, sampleMs)

  const windows: Window[] = []
  const load = await new Promise<LoadResult>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('./soak-load-child.ts', import.meta.url).pathname, JSON.stringify({
      url: ingestUrl, path: `/webhooks/${BENCH_TOOL}`, bodiesFile, ratePerSec: rate, durationMs, idPrefix: `${prefix}d-`,
      // below ingest's 64 connections per client (HTTP_MAX_CONNECTIONS_PER_CLIENT): a socket the generator
      // replaces is still open on the server for a moment, and a 65th connection is closed at once by design
      connections: 48, windowMs: 60_000, resendEvery: 100, acceptedFile,
    })], { stdio: ['ignore', 'pipe', 'inherit'] })
    let result: LoadResult | undefined
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('window ')) {
        const w = JSON.parse(line.slice(7)) as Window
        windows.push(w)
        const s = samples.at(-1)
        console.error(`  ${w.atS}s: sent ${w.sent} accepted ${w.accepted} dup ${w.duplicates} failed ${w.failed} http p99 ${w.httpP99Ms} ms; ` +
          `backlog ${s?.backlog}, rss ${JSON.stringify(s?.rssMb)}, cpu% ${JSON.stringify(s?.cpuPct)}, redis ${s?.redisMb} MB`)
      } else if (line.startsWith('result ')) result = JSON.parse(line.slice(7)) as LoadResult
    })
    child.once('close', (code) => (result && code === 0 ? resolve(result) : reject(new Error(`soak load child exited ${code}`))))
  })
  const loadEnded = Date.now()
  // the workers finish the backlog; the drain time is part of the report
  for (;;) {
    const g = (await stream.info()).groups.find((x) => x.name === keys.group)
    if ((g?.lag ?? 0) + (g?.pending ?? 0) === 0) break
    if (Date.now() - loadEnded > 300_000) throw new Error('soak: backlog not drained within 5 min after the load')
    await new Promise((r) => setTimeout(r, 200))
  }
  const drainSeconds = (Date.now() - loadEnded) / 1000
  clearInterval(sampler)
  await sample()

  // every accepted delivery stored exactly once; nothing stored that was not accepted
  const accepted = readFileSync(acceptedFile)
  const idStart = `${prefix}d-`.length
  const rows = await env.pool.query<{ i: number }>({ text: 'SELECT substring(id from $1::int)::int AS i FROM webhook_events', values: [idStart + 1] })
  const seen = new Uint8Array(accepted.length)
  let extra = 0
  let twice = 0
  for (const { i } of rows.rows) {
    if (seen[i]) twice++
    seen[i] = 1
    if (accepted[i] !== 1) extra++
  }
  let lost = 0
  for (let i = 0; i < accepted.length; i++) if (accepted[i] === 1 && !seen[i]) lost++
  const expected = accepted.reduce((n, v) => n + (v === 1 ? 1 : 0), 0)
  const dlq = Number((await env.pool.query('SELECT count(*) AS n FROM webhook_dlq')).rows[0].n)
  const latency = (await env.pool.query<{ minute: number; n: number; p50: number; p99: number; max: number }>(`
    SELECT floor(extract(epoch FROM received_at - $1::timestamptz) / 60)::int AS minute, count(*)::int AS n,
      round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000))::int AS p50,
      round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000))::int AS p99,
      round(max(extract(epoch FROM processed_at - received_at) * 1000))::int AS max
    FROM webhook_events GROUP BY 1 ORDER BY 1`, [new Date(t0).toISOString()])).rows
  const overall = (await env.pool.query<{ p50: number; p99: number }>(`SELECT
      round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000))::int AS p50,
      round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000))::int AS p99
    FROM webhook_events`)).rows[0]!

  // Redis memory the dedupe window keeps per delivery (#17 §4: ≤ 80 B): every key of this run that is not a stream,
  // by MEMORY USAGE (SAMPLES 0: every field counted), over the deliveries the delivery-seen hashes hold
  const runKeys = await nonStreamKeys(env.redis, `${prefix}*`)
  const seenHashes = runKeys.filter((k) => k.type === 'hash' && k.key.startsWith(keys.deliveryPrefix))
  const others = runKeys.filter((k) => !seenHashes.includes(k))
  // a quarter-window's level (see DeliverySeenLevels)
  const levelKeys = others.filter((k) => k.type === 'string' && k.key.startsWith(keys.deliveryPrefix) && k.key.endsWith(':level'))
  const levelValues = await pipelined(env.redis, levelKeys.map(({ key }) => ['get', key]))
  const dedupe = {
    hashes: seenHashes.length,
    bytes: seenHashes.reduce((sum, k) => sum + k.bytes, 0),
    deliveries: (await pipelined(env.redis, seenHashes.map(({ key }) => ['hlen', key]))).reduce<number>((sum, n) => sum + Number(n), 0),
    otherKeys: others.length,
    otherBytes: others.reduce((sum, k) => sum + k.bytes, 0),
    levels: Object.fromEntries(levelKeys.map(({ key }, i) => [key.slice(keys.deliveryPrefix.length, -':level'.length), Number(levelValues[i])])),
  }

  const first = samples.find((s) => s.atS >= 30) ?? samples[0]!
  const last = samples.at(-1)!
  const ok = lost === 0 && twice === 0 && extra === 0 && dlq === 0 && load.acceptedTwice === 0 && load.failed === 0 && load.unanswered === 0
  const lines = [
    `# soak — ${started.toISOString()}`, '',
    `\`npm run bench:soak -- --rate ${rate} --minutes ${durationMs / 60_000} --workers ${workerCount} --payload ${payload}` +
      `${args.env.map((e) => ` --env ${e}`).join('')}${args.compiled ? ' --compiled' : ''}\` on ${env.servers}; ${process.version}, 2-core box shared by Redis, PostgreSQL, the load generator and hookstream.`, '',
    `Processes: \`hookstream run --role ingest\` + ${workerCount} × \`--role worker\`${args.compiled ? ' (compiled dist, plain node)' : ' (src through tsx)'} (service defaults${args.env.length ? ` + ${args.env.join(', ')}` : ''}); an open-loop generator in its own process; every 100th request re-sends the delivery of ~2 s earlier.`, '',
    '| check | result |', '|---|---|',
    `| requests due / offered rate | ${load.sent.toLocaleString('en')} in ${load.sendSeconds.toFixed(0)} s (offered ${rate.toLocaleString('en')}/s) |`,
    windows.length > 0
      ? `| accepted during the load (the rate the system kept up with) | ${Math.round(windows.reduce((a, w) => a + w.accepted + w.duplicates, 0) / (windows.length * 60)).toLocaleString('en')}/s over ${windows.length} min |`
      : `| answered (the rate the system kept up with) | ${Math.round((load.accepted + load.duplicates) / load.sendSeconds).toLocaleString('en')}/s over ${load.sendSeconds.toFixed(0)} s |`,
    `| accepted (202) / re-sends answered duplicate / failed / unanswered | ${load.accepted.toLocaleString('en')} / ${load.duplicates.toLocaleString('en')} of ${load.resends.toLocaleString('en')} / ${load.failed} / ${load.unanswered} |`,
    `| stored rows / distinct deliveries expected | ${rows.rows.length.toLocaleString('en')} / ${expected.toLocaleString('en')} |`,
    `| **lost** (accepted, not stored) | **${lost}** |`,
    `| **duplicated** (a delivery stored twice, or answered 202 accepted twice) | **${twice + load.acceptedTwice}** |`,
    `| first deliveries answered duplicate because their re-send overtook them | ${load.unexpectedDuplicates} |`,
    `| stored but not accepted | ${extra} |`,
    `| DLQ rows / pending at end | ${dlq} / 0 |`,
    `| backlog drained after the load in | ${drainSeconds.toFixed(1)} s |`,
    `| latency ingest accept → row written (received_at → processed_at), whole run | p50 ${overall.p50} ms, **p99 ${overall.p99} ms** |`,
    `| RSS at ${first.atS} s → end (MB) | ${processes.map((p) => `${p.name} ${first.rssMb[p.name]} → ${last.rssMb[p.name]}`).join(', ')} |`,
    `| Redis used_memory at ${first.atS} s → end | ${first.redisMb} → ${last.redisMb} MB: stream length ${first.streamLength.toLocaleString('en')} → ${last.streamLength.toLocaleString('en')} (trimmed every 10 s), keys ${first.redisKeys.toLocaleString('en')} → ${last.redisKeys.toLocaleString('en')} |`,
    `| Redis memory of the dedupe window at the end (MEMORY USAGE of the delivery-seen hashes; they live one to 1.25 × WORKER_IDEMPOTENCY_TTL) | **${dedupe.deliveries ? (dedupe.bytes / dedupe.deliveries).toFixed(1) : '–'} B per delivery** (target ≤ 80): ${dedupe.deliveries.toLocaleString('en')} deliveries in ${dedupe.hashes.toLocaleString('en')} hashes, ${(dedupe.bytes / 1048576).toFixed(1)} MB; every other non-stream key: ${dedupe.otherKeys} keys, ${(dedupe.otherBytes / 1024).toFixed(1)} KB; quarter-window levels ${Object.entries(dedupe.levels).sort(([a], [b]) => Number(a) - Number(b)).map(([slot, level]) => `${slot}: ${level}`).join(', ') || 'none'} |`,
    `| result | ${ok ? 'OK: nothing lost, nothing duplicated' : 'FAILED'} |`, '',
    '## Per minute', '',
    '| minute | stored | p50 ms | p99 ms | max ms | accepted/s | HTTP p99 ms (from due time) | failed | backlog at end | RSS MB (' + processes.map((p) => p.name).join(' / ') + ') | CPU % of one core (' + cpuNames.join(' / ') + ') |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|',
    ...latency.map((m) => {
      const w = windows[m.minute]
      const s = samples.filter((x) => x.atS <= (m.minute + 1) * 60).at(-1)
      const cpuWindow = samples.filter((x) => x.atS > m.minute * 60 && x.atS <= (m.minute + 1) * 60)
      const cpu = cpuNames.map((n) => Math.round(cpuWindow.reduce((a, x) => a + (x.cpuPct[n] ?? 0), 0) / Math.max(1, cpuWindow.length)))
      return `| ${m.minute + 1} | ${m.n.toLocaleString('en')} | ${m.p50} | ${m.p99} | ${m.max} | ${w ? Math.round((w.accepted + w.duplicates) / 60).toLocaleString('en') : '–'} | ${w?.httpP99Ms ?? '–'} | ${w?.failed ?? '–'} | ${s?.backlog ?? '–'} | ` +
        `${processes.map((p) => s?.rssMb[p.name] ?? '–').join(' / ')} | ${cpu.join(' / ')} |`
    }),
    '', load.failed ? `Failures: ${JSON.stringify(load.failures)}` : '',
  ]
  writeResults('soak', started, lines.join('\n'), { rate, durationMs, workerCount, payload, env: extraEnv, load, lost, twice, extra, dlq, drainSeconds, overall, latency, windows, samples, dedupeWindow: dedupe })
  process.exitCode = ok ? 0 : 1
} finally {
  await stopAll(processes)
  await env.close()
}
