/**
 * Command workers bench: routing cost with 100 workers × 50 command types, throughput of one worker against a
 * raw XREADGROUP + XACK loop on the same Redis, and memory per idle worker.
 *
 *   npx tsx bench/command-workers.ts            (starts its own Redis; REDIS_URL to use yours)
 *   COMMANDS=100000 npx tsx bench/command-workers.ts
 */
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { StreamMessage } from '../src/core/envelope.js'
import { createApp } from '../src/commands/command-app.js'
import { dispatchCommand, newCounters } from '../src/commands/command-dispatch.js'
import { defineWorker, type WorkerDefinition } from '../src/commands/command-worker.js'
import { entriesOfReadReply } from '../src/sources/stream-client.js'
import { startRedis } from '../test/helpers/servers.js'
import { collectGarbage } from './collect-garbage.js'

const quiet = { warn: () => {} }
const WORKERS = 100
const TYPES = 50
const COMMANDS = Number(process.env.COMMANDS ?? 50_000)

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function preload(redis: Redis, stream: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 1000) {
    const pipe = redis.pipeline()
    for (let j = i; j < Math.min(count, i + 1000); j++) pipe.call('XADD', stream, '*', 'command', 'bench/noop', 'payload', `{"i":${j}}`)
    await pipe.exec()
  }
}

function manyWorkers(counts: Int32Array): WorkerDefinition<unknown>[] {
  return Array.from({ length: WORKERS }, (_, w) => defineWorker({
    name: `bench-w${w}`,
    description: `bench worker ${w}`,
    commands: Object.fromEntries(Array.from({ length: TYPES }, (_, t) => [`w${w}/c${t}`, () => { counts[w * TYPES + t]! += 1 }])),
  }) as WorkerDefinition<unknown>)
}

/** (a) route lookup + dispatch to the handler, in process, over many commands; plus the same through Redis. */
async function routing(redis: Redis) {
  const counts = new Int32Array(WORKERS * TYPES)
  const workers = manyWorkers(counts)
  const signal = new AbortController().signal
  const contexts = workers.map((worker) => ({
    worker, redis, dlqStream: 'unused', signal, logger: quiet, counters: newCounters(), execute: async () => '0-0', state: worker.state,
  }))
  const message = (command: string, i: number): StreamMessage => ({
    stream: 'bench', streamId: `${i}-0`, fields: { command, payload: '{"id":"f-1"}' }, deliveryCount: 1, readAtMs: 0,
    event: undefined as never, settle: () => {}, nack: () => {},
  })
  const batch = 1000
  const perCommandUs: number[] = []
  for (let round = 0; round < 300; round++) {
    const msgs = Array.from({ length: batch }, (_, i) => message(`w${(round + i) % WORKERS}/c${i % TYPES}`, round * batch + i + 1))
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < batch; i++) await dispatchCommand(msgs[i] as StreamMessage, contexts[(round + i) % WORKERS]!)
    if (round >= 20) perCommandUs.push(Number(process.hrtime.bigint() - t0) / 1000 / batch) // first rounds warm the JIT
  }
  const routed = counts.reduce((a, b) => a + b, 0)

  // through Redis: every worker reads every command through its own group and runs only its own handlers
  counts.fill(0)
  const app = createApp({ redis, stream: `bench-routing-${randomUUID()}`, consumer: 'bench', logger: quiet, blockMs: 1000 })
  await app.register(...workers)
  await app.start()
  const sent = 2000
  const pipe = redis.pipeline()
  for (let i = 0; i < sent; i++) pipe.call('XADD', app.stream, '*', 'command', `w${i % WORKERS}/c${i % TYPES}`, 'payload', '{}')
  const t0 = performance.now()
  await pipe.exec()
  await until(() => app.info().every((w) => w.handled + w.skipped === sent), 120_000)
  const deliveriesPerSec = (sent * WORKERS) / ((performance.now() - t0) / 1000)
  await app.stop()
  const handled = app.info().reduce((n, w) => n + w.handled, 0)
  const exact = handled === sent && counts.every((c, idx) => c === expectedCount(idx, sent))
  await redis.del(app.stream)
  return { medianUs: median(perCommandUs), routed, exact, deliveriesPerSec }
}

function expectedCount(idx: number, sent: number): number {
  const w = Math.floor(idx / TYPES)
  const t = idx % TYPES
  let n = 0
  for (let i = 0; i < sent; i++) if (i % WORKERS === w && i % TYPES === t) n++
  return n
}

/** (b) one worker with a trivial handler over COMMANDS pre-loaded commands, and the raw loop as baseline. */
async function throughput(redis: Redis, prefetch: number | undefined) {
  const stream = `bench-throughput-${randomUUID()}`
  await preload(redis, stream, COMMANDS)
  let handled = 0
  const app = createApp({ redis, stream, consumer: 'bench', logger: quiet, ...(prefetch ? { prefetch } : {}) })
  await app.register(defineWorker({ name: 'noop', description: 'trivial handler', startId: '0', commands: { 'bench/noop': () => { handled++ } } }))
  const t0 = performance.now()
  await app.start()
  await until(() => handled === COMMANDS, 300_000)
  const seconds = (performance.now() - t0) / 1000
  await app.stop()
  const pending = ((await redis.call('XPENDING', stream, 'noop')) as [number])[0]
  return { stream, perSec: COMMANDS / seconds, pending }
}

async function rawBaseline(redis: Redis, stream: string) {
  const reader = redis.duplicate()
  await reader.call('XGROUP', 'CREATE', stream, 'raw', '0')
  let done = 0
  const t0 = performance.now()
  for (;;) {
    const entries = entriesOfReadReply(await reader.call('XREADGROUP', 'GROUP', 'raw', 'bench', 'COUNT', 500, 'STREAMS', stream, '>'))
    if (entries.length === 0) break
    for (const [, fields] of entries) JSON.parse(fields?.[3] ?? 'null')
    await reader.call('XACK', stream, 'raw', ...entries.map(([id]) => id))
    done += entries.length
  }
  const perSec = done / ((performance.now() - t0) / 1000)
  reader.disconnect()
  return { perSec, done }
}

/** Heap and RSS of 100 started, idle workers, per worker. */
async function memory(redis: Redis) {
  collectGarbage()
  const before = process.memoryUsage()
  const app = createApp({ redis, stream: `bench-idle-${randomUUID()}`, consumer: 'bench', logger: quiet })
  await app.register(...Array.from({ length: WORKERS }, (_, w) => defineWorker({
    name: `idle-${w}`, description: 'idle', commands: { 'idle/noop': () => {} },
  })))
  await app.start()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  collectGarbage()
  const after = process.memoryUsage()
  await app.stop()
  await redis.del(app.stream)
  return { heapKb: (after.heapUsed - before.heapUsed) / 1024 / WORKERS, rssKb: (after.rss - before.rss) / 1024 / WORKERS }
}

async function main() {
  const server = process.env.REDIS_URL ? undefined : await startRedis()
  const redis = new Redis(process.env.REDIS_URL ?? server!.url)
  try {
    const mem = await memory(redis)
    const r = await routing(redis)
    const def = await throughput(redis, undefined)
    const raw = await rawBaseline(redis, def.stream)
    const wide = await throughput(redis, 500)
    await redis.del(def.stream, wide.stream)
    const rows: [string, string, string][] = [
      ['routing: median route lookup + dispatch (100 workers × 50 types, in process)', `${r.medianUs.toFixed(2)} µs/command`, `${r.routed} commands routed`],
      ['routing through Redis: 2,000 commands × 100 groups, each to exactly its handler', `${Math.round(r.deliveriesPerSec).toLocaleString('en')} deliveries/s`, r.exact ? 'every count exact' : 'COUNTS WRONG'],
      [`1 worker, trivial handler, ${COMMANDS.toLocaleString('en')} pre-loaded, defaults (concurrency 16 = prefetch)`, `${Math.round(def.perSec).toLocaleString('en')} commands/s`, `pending after stop: ${def.pending}`],
      ['1 worker, same, prefetch 500', `${Math.round(wide.perSec).toLocaleString('en')} commands/s`, `pending after stop: ${wide.pending}`],
      ['baseline: raw XREADGROUP COUNT 500 + XACK loop, same Redis', `${Math.round(raw.perSec).toLocaleString('en')} commands/s`, `${raw.done} read`],
      ['heap per idle started worker (100 workers, delta / 100)', `${mem.heapKb.toFixed(1)} KiB`, ''],
      ['RSS per idle started worker (100 workers, delta / 100)', `${mem.rssKb.toFixed(1)} KiB`, `peak RSS of the run: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`],
    ]
    const w0 = Math.max(...rows.map((x) => x[0].length))
    const w1 = Math.max(...rows.map((x) => x[1].length))
    console.log(`command workers bench (node ${process.version}, ${process.env.REDIS_URL ? 'REDIS_URL' : 'own redis-server'})`)
    for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`)
  } finally {
    redis.disconnect()
    await server?.stop()
  }
}

await main()
