import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { eventually, makeEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { FORWARD_SECRET, githubDelivery, openSpace, SECRET, type Space } from '../reliability/fixture.js'

// What the README promises about retries, ordering, draining and poison, checked on `hookstream run` itself.
interface Ctx { s: Space; svc?: ServiceProcess; rx?: Receiver }
const Lifecycle = suite<Ctx>('hookstream run: retries, order, drain and poison end to end', {} as Ctx)
Lifecycle.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Lifecycle.after.each((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  rx: (rx) => rx.close(),
  s: (s) => s.close(),
}))

interface Arrival { id: string; repository: string; status: number }
interface Receiver { url: string; arrivals: Arrival[]; close(): Promise<void> }
/** A forward destination; `answer` decides each request's status (and headers), after any delay it likes. */
async function receiver(answer: (event: { id: string; repository: string }, n: number) => Promise<[number, Record<string, string>?]> | [number, Record<string, string>?]): Promise<Receiver> {
  const arrivals: Arrival[] = []
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const event = JSON.parse(Buffer.concat(chunks).toString()) as { id: string; repository: string }
    const [status, headers] = await answer(event, arrivals.filter((a) => a.id === event.id).length + 1)
    arrivals.push({ id: event.id, repository: event.repository, status })
    res.writeHead(status, headers ?? {}).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, arrivals,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

const forwardTool = (url: string, retry = '{ initial_interval: 50ms, max_interval: 200ms, multiplier: 2, max_retries: 5, max_elapsed_time: 5m }') =>
  `tools:\n  - { id: fwd, provider: github, secret: ${SECRET}, tenant_id: acme, processing_mode: store_and_forward, forward_url: "${url}", forward_secret: "${FORWARD_SECRET}", retry_policy: ${retry} }\n`

async function retryAttempts(svc: ServiceProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${svc.healthUrl}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^webhook_retry_attempts_total\{attempt="([^"]+)",reason="DESTINATION_429"\} (\d+)/gm)) out[m[1]!] = Number(m[2])
  return out
}

Lifecycle('a parked retry comes back with its attempt count: delivered on the third request, attempts 1 and 2 recorded', withTimeLimit(180_000, async (ctx) => {
  // Retry-After 6 s is past the 5 s a retry may wait inline, so each retry is parked in Redis and comes back
  ctx.rx = await receiver((_e, n) => (n <= 2 ? [429, { 'retry-after': '6' }] : [200]))
  ctx.svc = await startServiceProcess({ ...ctx.s.env, FORWARD_ALLOW_PRIVATE: '127.0.0.1/32', WORKER_BLOCK_TIMEOUT: '300ms' }, forwardTool(ctx.rx.url))
  const event = makeEvent({ tool_id: 'fwd' })
  await ctx.s.stream.add(event)
  await eventually('forwarded', async () => Boolean((await ctx.s.db.db.selectFrom('webhook_events').select('forwarded_at').where('id', '=', event.id).executeTakeFirst())?.forwarded_at), 90_000)
  assert.equal(ctx.rx.arrivals.map((a) => a.status), [429, 429, 200])
  assert.equal(await retryAttempts(ctx.svc), { 1: 1, 2: 1 })
  assert.is(await ctx.s.rows('webhook_dlq'), 0)
  // the service logs each attempt, numbered across the parks, and counts it by destination
  const attempts = () => ctx.s.db.db.selectFrom('webhook_deliveries').select(['destination_id', 'attempt', 'http_status', 'error_code', 'next_attempt_at'])
    .where('event_id', '=', event.id).orderBy('attempt').execute()
  await eventually('three attempt rows', async () => (await attempts()).length === 3, 10_000)
  assert.equal((await attempts()).map((a) => [a.destination_id, a.attempt, a.http_status, a.error_code, a.next_attempt_at !== null]),
    [['fwd', 1, 429, 'DESTINATION_429', true], ['fwd', 2, 429, 'DESTINATION_429', true], ['fwd', 3, 200, null, false]])
  const text = await (await fetch(`${ctx.svc!.healthUrl}/metrics`)).text()
  assert.match(text, /^webhook_forward_attempts_total\{destination="fwd",outcome="transient"\} 2$/m)
  assert.match(text, /^webhook_forward_attempts_total\{destination="fwd",outcome="success"\} 1$/m)
}))

Lifecycle('a parked retry that runs out of attempts is dead-lettered after max_retries, not retried afresh', withTimeLimit(180_000, async (ctx) => {
  ctx.rx = await receiver(() => [429, { 'retry-after': '6' }])
  ctx.svc = await startServiceProcess({ ...ctx.s.env, FORWARD_ALLOW_PRIVATE: '127.0.0.1/32', WORKER_BLOCK_TIMEOUT: '300ms' },
    forwardTool(ctx.rx.url, '{ initial_interval: 50ms, max_interval: 200ms, multiplier: 2, max_retries: 1, max_elapsed_time: 5m }'))
  await ctx.s.stream.add(makeEvent({ tool_id: 'fwd' }))
  await eventually('dead-lettered', async () => (await ctx.s.rows('webhook_dlq')) === 1, 90_000)
  const dlq = await ctx.s.db.db.selectFrom('webhook_dlq').select(['error_code']).executeTakeFirstOrThrow()
  assert.is(dlq.error_code, 'DESTINATION_429')
  assert.is(ctx.rx.arrivals.length, 2, 'the first request and one parked retry')
  assert.equal(await retryAttempts(ctx.svc), { 1: 1 })
}))

Lifecycle('with WORKER_ORDER_BY=repository each repository is delivered in stream order although some first attempts fail', withTimeLimit(180_000, async (ctx) => {
  // every third event's first attempt answers 503 and is retried inline (50 ms); answers come after a random
  // pause, so without per-key order later events of a repository would overtake the retried one
  ctx.rx = await receiver(async (e, n) => {
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5)))
    return [n === 1 && Number.parseInt(e.id.slice(0, 2), 16) % 3 === 0 ? 503 : 200]
  })
  ctx.svc = await startServiceProcess({ ...ctx.s.env, FORWARD_ALLOW_PRIVATE: '127.0.0.1/32', WORKER_ORDER_BY: 'repository', WORKER_BLOCK_TIMEOUT: '300ms' }, forwardTool(ctx.rx.url))
  const events = Array.from({ length: 90 }, (_, i) => makeEvent({ tool_id: 'fwd', repository: `acme/r${i % 3}` }))
  await ctx.s.stream.addMany(events)
  await eventually('all delivered', () => ctx.rx!.arrivals.filter((a) => a.status === 200).length >= 90, 90_000)
  assert.ok(ctx.rx.arrivals.some((a) => a.status === 503), 'some first attempts failed')
  for (const repo of ['acme/r0', 'acme/r1', 'acme/r2']) {
    const delivered = ctx.rx.arrivals.filter((a) => a.status === 200 && a.repository === repo).map((a) => a.id)
    assert.equal(delivered, events.filter((e) => e.repository === repo).map((e) => e.id), `order of ${repo}`)
  }
}))

Lifecycle('on SIGTERM ingest stops taking webhooks and /health/ready answers 503 while the worker drains, then it exits 0', withTimeLimit(180_000, async (ctx) => {
  let letGo!: () => void
  const held = new Promise<void>((resolve) => { letGo = resolve })
  ctx.rx = await receiver(async () => { await held; return [200] })
  ctx.svc = await startServiceProcess({ ...ctx.s.env, FORWARD_ALLOW_PRIVATE: '127.0.0.1/32', WORKER_BLOCK_TIMEOUT: '300ms', WORKER_SHUTDOWN_TIMEOUT: '120s' },
    forwardTool(ctx.rx.url))
  const d = githubDelivery('fwd', randomUUID())
  assert.is((await fetch(`${ctx.svc.ingestUrl}${d.path}`, { method: 'POST', body: d.body, headers: d.headers })).status, 202)
  await eventually('the forward is in flight', async () => (await ctx.s.pending()) === 1, 60_000)
  ctx.svc.child.kill('SIGTERM')
  await eventually('not ready while draining', async () => {
    const r = await fetch(`${ctx.svc!.healthUrl}/health/ready`).catch(() => undefined)
    return r?.status === 503 && JSON.stringify(await r.json()).includes('shutting down')
  }, 30_000)
  const again = githubDelivery('fwd', randomUUID())
  const refused = await fetch(`${ctx.svc.ingestUrl}${again.path}`, { method: 'POST', body: again.body, headers: again.headers })
    .then((r) => r.status, () => 'connection refused')
  assert.ok(refused === 'connection refused' || refused === 503, `a webhook during the drain is refused (${refused})`)
  assert.is(ctx.rx.arrivals.length, 0, 'the held forward has not finished')
  letGo()
  assert.is(await ctx.svc.exited, 0)
  assert.is(await ctx.s.pending(), 0, 'the drained event was acked')
  const row = await ctx.s.db.db.selectFrom('webhook_events').select('forwarded_at').executeTakeFirstOrThrow()
  assert.ok(row.forwarded_at, 'and forwarded')
}))

Lifecycle('an entry delivered more than WORKER_MAX_DELIVERIES times is dead-lettered as poison and /health turns degraded', withTimeLimit(180_000, async (ctx) => {
  const { s } = ctx
  const event = makeEvent({ tool_id: 'fwd' })
  const [streamId] = await s.stream.addMany([event])
  // another consumer read it three times (as workers that crashed on it would), then went away
  await s.redis.call('XREADGROUP', 'GROUP', s.keys.group, 'crashed', 'COUNT', 1, 'STREAMS', s.keys.stream, '>')
  for (let i = 0; i < 2; i++) await s.redis.call('XCLAIM', s.keys.stream, s.keys.group, 'crashed', 0, streamId!)
  ctx.svc = await startServiceProcess({ ...s.env, WORKER_MAX_DELIVERIES: '2', WORKER_CLAIM_IDLE: '1s', WORKER_BLOCK_TIMEOUT: '300ms' },
    `tools:\n  - { id: fwd, provider: github, secret: ${SECRET}, tenant_id: acme }\n`)
  await eventually('dead-lettered as poison', async () => (await s.rows('webhook_dlq')) === 1, 60_000)
  const dlq = await s.db.db.selectFrom('webhook_dlq').select(['error_code', 'error_class', 'status']).executeTakeFirstOrThrow()
  assert.equal(dlq, { error_code: 'POISON', error_class: 'poison', status: 'failed' })
  assert.is(await s.rows(), 0, 'the poison entry was never stored')
  const health = await fetch(`${ctx.svc.healthUrl}/health`)
  const body = await health.json() as { status: string; components: { worker: { status: string; poisonRecent: number; reasons?: string[] } } }
  // the worker component says why: the test Redis keeps nothing on disk, which degrades the redis component on its own
  assert.equal([health.status, body.status, body.components.worker.status, body.components.worker.poisonRecent], [200, 'degraded', 'degraded', 1], JSON.stringify(body))
  assert.match((body.components.worker.reasons ?? []).join('; '), '1 poison entries dead-lettered in the last 5 minutes')
}))

Lifecycle.run()
