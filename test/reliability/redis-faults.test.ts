import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedPostgres, startRedis, type TestRedis } from '../helpers/servers.js'
import { eventually, makeEvent, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { openSpace, post, toolsYaml, type Space } from './fixture.js'
import { release } from '../helpers/release.js'

interface Ctx { redis: TestRedis; s: Space; svc?: ServiceProcess }
const Faults = suite<Ctx>('Redis faults against the service process', {} as Ctx)
Faults.before.each(async (ctx) => {
  ctx.redis = await startRedis({ appendonly: true })
  ctx.s = await openSpace(ctx.redis.url, await (await sharedPostgres()).createDatabase())
})
Faults.after.each(async (ctx) => {
  if (ctx.svc) { ctx.svc.child.kill('SIGKILL'); await ctx.svc.exited; ctx.svc = undefined }
  await release(ctx, { s: (s) => s.close(), redis: (r) => r.stop() })
})

type Result = Awaited<ReturnType<typeof post>>

/** Posts with `senders` concurrent clients until `stop()`; each request is bounded at 4 s (status 0 = no answer). */
function traffic(url: string, senders: number) {
  const results: Result[] = []
  let running = true
  const loops = Array.from({ length: senders }, async () => {
    while (running) {
      results.push(await post(url, 'store-tool', 4000))
      await sleep(20)
    }
  })
  return { results, stop: async () => { running = false; await Promise.all(loops) } }
}

/** Polls /health/ready every 100 ms, recording transitions. */
function readiness(healthUrl: string) {
  const states: boolean[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const ready = await fetch(`${healthUrl}/health/ready`, { signal: AbortSignal.timeout(3000) }).then((r) => r.ok, () => false)
      if (states.at(-1) !== ready) states.push(ready)
      await sleep(100)
    }
  })()
  return { states, stop: async () => { running = false; await loop } }
}

Faults('Redis restarted mid-run: ingest answers 503 + Retry-After within 3 s, ready goes false then true, no 202 is lost', withTimeLimit(180_000, async (ctx) => {
  const { s } = ctx
  // claim idle 3 s: an XREADGROUP reply lost with the connection leaves entries pending in this consumer, and
  // the source reads only new entries after a reconnect, so they come back through XAUTOCLAIM (H9 report, bug 2)
  ctx.svc = await startServiceProcess({ ...s.env, WORKER_CONSUMER_NAME: 'rr-1', WORKER_BLOCK_TIMEOUT: '500ms', WORKER_CLAIM_IDLE: process.env.RELIABILITY_KNOWN_BUGS ? '60s' : '3s' },
    toolsYaml({ 'store-tool': undefined }))
  const load = traffic(ctx.svc.ingestUrl, 4)
  const ready = readiness(ctx.svc.healthUrl)
  await sleep(1500)
  await ctx.redis.stop()
  const atStop = load.results.length
  // down until ingest has refused requests and readiness has gone false (a wait on both, not a fixed pause)
  await sleep(2500)
  await eventually('a request refused while Redis is down', () => load.results.slice(atStop).some((r) => r.status === 503), 20_000)
  await eventually('not ready while Redis is down', () => ready.states.includes(false), 20_000)
  const whileDown = load.results.length
  await ctx.redis.start()
  await eventually('ready again', () => ready.states.at(-1) === true, 20_000)
  await sleep(1500)
  await load.stop()
  await ready.stop()
  const accepted = load.results.filter((r) => r.status === 202)
  const refused = load.results.filter((r) => r.status === 503)
  const other = load.results.filter((r) => r.status !== 202 && r.status !== 503)
  assert.equal(other.map((r) => `${r.status} after ${r.ms} ms`), [], 'never a 5xx other than 503, never a hang')
  assert.ok(refused.length > 0, `some requests hit the outage (${load.results.length} sent, ${whileDown} before restart)`)
  assert.ok(refused.every((r) => r.retryAfter !== null && Number(r.retryAfter) > 0), 'every 503 has Retry-After')
  assert.ok(load.results.every((r) => r.ms < 3000), `slowest answer ${Math.max(...load.results.map((r) => r.ms))} ms`)
  assert.equal(ready.states.slice(0, 3), [true, false, true], `readiness transitions ${JSON.stringify(ready.states)}`)
  await progressTo(`${accepted.length} accepted events stored`, () => s.rows(), accepted.length).catch(() => {})
  const stored = new Set((await s.db.db.selectFrom('webhook_events').select('id').execute()).map((r) => r.id))
  const missing = accepted.filter((r) => !stored.has(r.delivery)).map((r) => r.delivery)
  if (missing.length > 0) {
    const entries = (await s.redis.xrange(s.keys.stream, '-', '+')).map(([id, f]) => [id, JSON.parse(f[1] ?? '{}').id as string])
    const inStream = entries.filter(([, eid]) => missing.includes(eid!))
    const groups = await s.redis.call('XINFO', 'GROUPS', s.keys.stream)
    const consumers = await s.redis.call('XINFO', 'CONSUMERS', s.keys.stream, s.keys.group).catch((e: Error) => e.message)
    assert.unreachable(`${missing.length} of ${accepted.length} accepted events not stored; ${inStream.length} of them are in the stream ` +
      `(first ${JSON.stringify(inStream.slice(0, 3))}); stream length ${entries.length}; groups ${JSON.stringify(groups)}; consumers ${JSON.stringify(consumers)}; ` +
      `log: ${ctx.svc.output().split('\n').filter((l) => l.includes('"level":4') || l.includes('"level":5')).slice(0, 6).join(' | ').slice(0, 2500)}`)
  }
  // a 503 (or no answer) whose XADD still landed after the reconnect is stored too: the sender's retry with the
  // same delivery id is then a duplicate, so that is at-least-once, not loss; anything else would be a phantom
  const sent = new Set(load.results.map((r) => r.delivery))
  assert.equal([...stored].filter((id) => !sent.has(id)), [], 'nothing stored that was never sent')
  assert.ok(stored.size - accepted.length <= 10, `${stored.size - accepted.length} refused requests were queued anyway`)
  await eventually('nothing pending', async () => (await s.pending()) === 0, 10_000)
  assert.is(await s.rows('webhook_dlq'), 0)
}))

/** Starts the service, freezes it, queues `queued` events, fills Redis (noeviction), and thaws the service. */
async function fullRedis(ctx: Ctx, queued: number): Promise<ServiceProcess> {
  const { s } = ctx
  // trim off: "nothing was queued" is read from the stream's length, which a trim would also bring to 0
  const svc = ctx.svc = await startServiceProcess({ ...s.env, WORKER_CONSUMER_NAME: 'oom-1', WORKER_BLOCK_TIMEOUT: '500ms', STREAM_TRIM_INTERVAL: 'off' }, toolsYaml({ 'store-tool': undefined }))
  // frozen while the backlog is queued and Redis fills up, so the worker meets a full Redis with work to do
  // (a service started against a full Redis cannot even create its group: see the H9 report)
  svc.child.kill('SIGSTOP')
  for (let i = 0; i < queued; i += 1000) await s.stream.addMany(Array.from({ length: Math.min(1000, queued - i) }, () => makeEvent({ tool_id: 'store-tool' })))
  const used = Number(/used_memory:(\d+)/.exec(await s.redis.info('memory'))?.[1])
  await s.redis.config('SET', 'maxmemory-policy', 'noeviction')
  // below what is used: with noeviction every write is refused, however memory moves in the meantime
  await s.redis.config('SET', 'maxmemory', String(Math.max(1_000_000, used - 2_000_000)))
  const probe = await s.redis.set(`${s.keys.stream}:probe`, 'x'.repeat(1000)).then(() => 'written', (err: Error) => err.message)
  assert.match(probe, /OOM/, 'Redis refuses writes now')
  svc.child.kill('SIGCONT')
  return svc
}

Faults('Redis refusing writes (maxmemory, noeviction): ingest answers 503 + Retry-After, queues nothing, and recovers', withTimeLimit(180_000, async (ctx) => {
  const { s } = ctx
  const svc = await fullRedis(ctx, 0)
  const answers = await Promise.all(Array.from({ length: 10 }, () => post(svc.ingestUrl, 'store-tool', 4000)))
  assert.equal(answers.map((a) => a.status), Array(10).fill(503), JSON.stringify(answers.map((a) => [a.status, a.code])))
  assert.ok(answers.every((a) => Number(a.retryAfter) > 0 && a.ms < 3000))
  assert.is(Number(await s.redis.xlen(s.keys.stream)), 0, 'none of the refused requests was queued')
  await s.redis.config('SET', 'maxmemory', '0')
  const after = await post(svc.ingestUrl, 'store-tool')
  assert.is(after.status, 202, 'accepting again once Redis has room')
  await eventually('stored', async () => (await s.rows()) === 1)
}))

// dedupe's claim and settle's done marker are refused with OOM; the pipeline goes on without them
Faults('Redis refusing writes: the worker keeps draining what is queued', withTimeLimit(180_000, async (ctx) => {
  const { s } = ctx
  const queued = 2000
  const svc = await fullRedis(ctx, queued)
  const drained = await progressTo('drained', () => s.rows(), queued).then(() => true, () => false)
  assert.ok(drained, `the worker drains the backlog while Redis refuses writes: ${await s.rows()} of ${queued} stored; ` +
    `worker log: ${svc.output().split('\n').filter((l) => /held|OOM|dependency/.test(l)).slice(0, 2).join(' | ').slice(0, 600)}`)
  await eventually('nothing pending', async () => (await s.pending()) === 0, 10_000)
}))

Faults.run()
