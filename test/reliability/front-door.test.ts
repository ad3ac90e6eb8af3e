import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import pg from 'pg'
import { createHealth, startHealthServer, type Health, type HealthServer } from '../../src/http/health.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { startIngest, type IngestHarness } from '../http/providers/ingest-harness.js'
import { githubDelivery, openSpace, SECRET, type Space } from './fixture.js'

// The front door under one client's pressure, with raw sockets on loopback (127.0.0.2 and 127.0.0.3 are other
// client addresses: every 127/8 address reaches the loopback listener)
interface Ctx { ingest?: IngestHarness; http?: RunningHttpServer; health?: { server: HealthServer; health: Health; pool: pg.Pool; redis: Redis } }
const FrontDoor = suite<Ctx>('front door: memory budget, per-client connection cap, idle reaping (raw sockets)', {})
FrontDoor.after.each(async (ctx) => {
  await ctx.ingest?.close()
  await ctx.http?.close()
  if (ctx.health) {
    await ctx.health.server.close()
    ctx.health.health.close()
    await ctx.health.pool.end()
    ctx.health.redis.disconnect()
  }
  ctx.ingest = undefined
  ctx.http = undefined
  ctx.health = undefined
})

const MiB = 1024 * 1024

/** Waits until `done()` holds (or resolves true), checking every 10 ms; fails naming `what` after `timeoutMs`. */
async function waitFor(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await done())) {
    if (Date.now() > deadline) assert.unreachable(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

interface RawClient {
  readonly sock: Socket
  /** Everything received so far. */
  received(): string
  /** The status of the first response, once its status line arrived. */
  status(): number | undefined
  isClosed(): boolean
  /** Whether the server closed the connection before sending anything. */
  closedSilently(): boolean
}

/** A raw TCP client bound to `localAddress`; resolves once connected (or closed by the server at once). */
async function rawClient(port: number, localAddress = '127.0.0.1'): Promise<RawClient> {
  const sock = connect({ port, host: '127.0.0.1', localAddress })
  let data = ''
  let closed = false
  sock.on('error', () => {})
  sock.on('data', (d) => { data += d.toString('latin1') })
  sock.once('close', () => { closed = true })
  await new Promise<void>((resolve) => { sock.once('connect', resolve); sock.once('close', () => resolve()) })
  return {
    sock,
    received: () => data,
    status: () => { const m = /^HTTP\/1\.1 (\d{3})/.exec(data); return m ? Number(m[1]) : undefined },
    isClosed: () => closed,
    closedSilently: () => closed && data === '',
  }
}

const sign = (body: string, secret: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`

/** POSTs a small signed GitHub push from `localAddress` (a plain node:http request, so the source address is ours). */
function signedPush(port: number, localAddress: string, secret = 'gh-secret'): Promise<{ status: number; body: string }> {
  const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, localAddress, method: 'POST', path: '/webhooks/gh', agent: false,
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sign(body, secret) },
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

FrontDoor('40 unsigned 10 MiB uploads hold no more than the in-flight budget, are refused 503 INGEST_BUSY before their body is read, and a signed webhook still gets 202', async (ctx) => {
  // the defaults: INGEST_MAX_BODY 10 MiB, INGEST_MAX_INFLIGHT_BYTES 64 MiB
  ctx.ingest = await startIngest((await sharedRedis()).url)
  ctx.ingest.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
  const size = 10 * MiB
  const body = Buffer.alloc(size, 0x61) // one buffer, written to every socket
  globalThis.gc?.()
  const baseline = process.memoryUsage().arrayBuffers
  let peak = 0
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline) }, 5)
  try {
    const clients = await Promise.all(Array.from({ length: 40 }, () => rawClient(ctx.ingest!.port)))
    const written = clients.map(() => false)
    clients.forEach((c, i) => {
      // unsigned: no X-Hub-Signature-256; everything but the last byte, which is held back
      c.sock.write(`POST /webhooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nContent-Length: ${size}\r\n\r\n`)
      c.sock.write(body.subarray(0, size - 1), () => { written[i] = true })
    })
    await waitFor('every upload to be answered or written', () => clients.every((c, i) => c.status() !== undefined || written[i] || c.isClosed()))
    const refused = clients.filter((c) => c.status() === 503)
    const held = clients.filter((c) => c.status() === undefined && !c.isClosed())
    // a legitimate sender is served while the admitted uploads hold their share
    const legit = await signedPush(ctx.ingest.port, '127.0.0.3')
    assert.is(legit.status, 202, legit.body)
    for (const c of held) c.sock.write('a')
    await waitFor('the admitted uploads to be answered', () => held.every((c) => c.status() !== undefined))
    clearInterval(sampler)
    if (process.env.FRONT_DOOR_FIGURES) console.log(`front door: peak Buffer memory during 40 × 10 MiB uploads: ${(peak / MiB).toFixed(1)} MiB`)
    // the budget (64 MiB), the client's own 10 MiB body, and each admitted body once more while it is joined
    assert.ok(peak < 150 * MiB, `Buffer memory grew by ${(peak / MiB).toFixed(1)} MiB during the uploads (bound 150 MiB)`)
    assert.ok(refused.length >= 34, `${refused.length} of 40 uploads refused (at most 6 × 10 MiB fit 64 MiB)`)
    assert.ok(held.length >= 1, `${held.length} uploads admitted`)
    assert.is(refused.length + held.length, 40)
    for (const c of refused) {
      assert.match(c.received(), /\r\nretry-after: 5\r\n/i)
      assert.match(c.received(), /\r\nconnection: close\r\n/i)
      assert.match(c.received(), /"code":"INGEST_BUSY"/)
    }
    assert.equal(held.map((c) => c.status()), held.map(() => 401))
    for (const c of clients) c.sock.destroy()
  } finally {
    clearInterval(sampler)
  }
  assert.is(await ctx.ingest.length(), 1)
})

FrontDoor('one address holding its connection cap locks out no other sender, and the connections over its cap are closed at once', async (ctx) => {
  const closed: string[] = []
  ctx.ingest = await startIngest((await sharedRedis()).url, {},
    { maxConnections: 32, maxConnectionsPerClient: 8, headersTimeoutMs: 30_000, requestTimeoutMs: 60_000, onConnectionClosed: (reason) => closed.push(reason) })
  ctx.ingest.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
  const attacker: RawClient[] = []
  for (let i = 0; i < 32; i++) {
    const c = await rawClient(ctx.ingest.port, '127.0.0.2')
    // headers never finished: each holds its connection for the headers timeout
    if (!c.isClosed()) c.sock.write('POST /webhooks/gh HTTP/1.1\r\nHost: x\r\n')
    attacker.push(c)
  }
  await waitFor('the connections over the cap to be closed', () => attacker.filter((c) => c.isClosed()).length >= 24, 10_000)
  const legit = await signedPush(ctx.ingest.port, '127.0.0.3')
  assert.is(legit.status, 202, legit.body)
  assert.is(attacker.filter((c) => c.closedSilently()).length, 24)
  assert.is(attacker.filter((c) => !c.isClosed()).length, 8)
  assert.equal(closed, Array(24).fill('client_cap'))
  for (const c of attacker) c.sock.destroy()
  assert.is(await ctx.ingest.length(), 1)
})

FrontDoor('/health/live answers while 70 slow clients hold the health and ingest ports and one address holds its ingest cap', async (ctx) => {
  const redis = new Redis((await sharedRedis()).url, { maxRetriesPerRequest: 1 })
  const pool = new pg.Pool({ connectionString: (await sharedPostgres()).url, max: 2 })
  const health = createHealth({
    checkDatabase: async () => { await pool.query('SELECT 1'); return {} },
    checkRedis: async () => ({ ping: await redis.ping() }),
    checkQueue: async () => ({ depth: 0, lag: 0, pending: 0, oldestPendingAgeSeconds: 0, groupExists: true }),
    worker: () => ({ inFlight: 0, processed: 0, shuttingDown: false }),
  })
  const server = await startHealthServer(health, { port: 0, host: '127.0.0.1', headersTimeoutMs: 30_000 })
  ctx.health = { server, health, pool, redis }
  ctx.ingest = await startIngest((await sharedRedis()).url, {}, { headersTimeoutMs: 30_000, requestTimeoutMs: 60_000 })
  ctx.ingest.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
  const slow: RawClient[] = []
  for (const port of [server.port, ctx.ingest.port]) {
    for (let i = 0; i < 70; i++) {
      const c = await rawClient(port, '127.0.0.2')
      if (!c.isClosed()) c.sock.write('GET /health/live HTTP/1.1\r\nHost: x\r\n')
      slow.push(c)
    }
  }
  const probe = await fetch(`${server.url}/health/live`)
  assert.is(probe.status, 200)
  // 8 per client on the health port, 64 on the ingest port; the rest were closed at once
  await waitFor('the connections over the per-client caps to close', () => slow.filter((c) => c.isClosed()).length >= 62 + 6, 10_000)
  assert.is(slow.slice(0, 70).filter((c) => !c.isClosed()).length, 8)
  assert.is(slow.slice(70).filter((c) => !c.isClosed()).length, 64)
  assert.is((await signedPush(ctx.ingest.port, '127.0.0.3')).status, 202)
  for (const c of slow) c.sock.destroy()
})

FrontDoor('near maxConnections idle keep-alive connections are closed first, oldest first, so a new sender gets through; a request in progress is kept', async (ctx) => {
  const closed: string[] = []
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter([{
    method: 'POST', path: '/echo', handler: async (req, res) => {
      let n = 0
      for await (const chunk of req) n += (chunk as Buffer).length
      res.writeHead(200, { 'content-type': 'text/plain' }).end(String(n))
    },
  }]), { maxConnections: 16, keepAliveTimeoutMs: 60_000, headersTimeoutMs: 30_000, requestTimeoutMs: 60_000, onConnectionClosed: (reason) => closed.push(reason) })
  const port = ctx.http.port
  // the oldest connection is in the middle of a request: it is busy, not idle
  const busy = await rawClient(port)
  busy.sock.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello')
  const idle: RawClient[] = []
  for (let i = 0; i < 15; i++) {
    const c = await rawClient(port)
    c.sock.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
    await waitFor(`keep-alive client ${i} to be answered`, () => c.status() !== undefined || c.isClosed(), 30_000)
    idle.push(c)
  }
  const res = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: 'new sender' })
  assert.equal([res.status, await res.text()], [200, '10'])
  await waitFor('the reaped connections to close', () => idle.filter((c) => c.isClosed()).length === closed.length, 10_000)
  assert.ok(closed.length >= 1 && closed.every((r) => r === 'idle_reaped'), JSON.stringify(closed))
  // oldest first: the reaped ones are a prefix of the keep-alive clients, in the order they became idle
  const reaped = idle.map((c) => c.isClosed())
  assert.equal(reaped, reaped.map((_, i) => i < closed.length), JSON.stringify(reaped))
  assert.is(busy.isClosed(), false, 'the connection with a request in progress is kept')
  busy.sock.write('world')
  await waitFor('the busy request to be answered', () => busy.status() !== undefined)
  assert.is(busy.status(), 200)
  for (const c of [busy, ...idle]) c.sock.destroy()
})

FrontDoor.run()

// The same limits wired through configuration: env settings, a YAML tool's max_body, the metrics an operator sees
const Service = suite<{ s: Space; svc?: ServiceProcess }>('front door through hookstream run', {} as { s: Space })
Service.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Service.after.each((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  s: (s) => s.close(),
}))

Service('the settings cap connections per address and bodies in flight, a YAML tool\'s max_body applies, and the metrics count it', withTimeLimit(180_000, async (ctx) => {
  ctx.svc = await startServiceProcess({
    ...ctx.s.env, HTTP_MAX_CONNECTIONS_PER_CLIENT: '4', INGEST_MAX_BODY: '64KiB', INGEST_MAX_INFLIGHT_BYTES: '128KiB',
  }, `tools:\n  - { id: gh, provider: github, secret: ${SECRET} }\n  - { id: small, provider: github, secret: ${SECRET}, max_body: 1KiB }\n`)
  const port = Number(new URL(ctx.svc.ingestUrl).port)
  const held: RawClient[] = []
  for (let i = 0; i < 6; i++) {
    const c = await rawClient(port, '127.0.0.2')
    if (!c.isClosed()) c.sock.write('POST /webhooks/gh HTTP/1.1\r\nHost: x\r\n')
    held.push(c)
  }
  await waitFor('the two connections over the cap to close', () => held.filter((c) => c.isClosed()).length >= 2, 10_000)
  // 60 KiB fits the 7/8 of 128 KiB that large bodies may take once, not twice
  const uploads: RawClient[] = []
  for (let i = 0; i < 2; i++) {
    const c = await rawClient(port, '127.0.0.3')
    c.sock.write(`POST /webhooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nContent-Length: ${60 * 1024}\r\n\r\n{`)
    uploads.push(c)
    if (i === 0) await waitFor('the first upload admitted', async () => /^webhook_ingest_inflight_bytes 61440$/m.test(await (await fetch(`${ctx.svc!.healthUrl}/metrics`)).text()))
  }
  await waitFor('the second upload refused', () => uploads[1]!.status() !== undefined, 30_000)
  assert.is(uploads[1]!.status(), 503)
  assert.match(uploads[1]!.received(), /"code":"INGEST_BUSY"/)
  const big = githubDelivery('small', randomUUID(), { ref: 'refs/heads/main', pad: 'x'.repeat(2000) })
  const tooLarge = await fetch(`${ctx.svc.ingestUrl}${big.path}`, { method: 'POST', body: big.body, headers: big.headers })
  assert.is(tooLarge.status, 413)
  assert.match(((await tooLarge.json()) as { error: { message: string } }).error.message, /tool "small"'s limit of 1024 bytes/)
  const ok = githubDelivery('small', randomUUID())
  assert.is((await fetch(`${ctx.svc.ingestUrl}${ok.path}`, { method: 'POST', body: ok.body, headers: ok.headers })).status, 202)
  assert.is((await fetch(`${ctx.svc.healthUrl}/health/live`)).status, 200)
  const metrics = await (await fetch(`${ctx.svc.healthUrl}/metrics`)).text()
  assert.match(metrics, /^webhook_http_connections_closed_total\{reason="client_cap"\} 2$/m)
  assert.match(metrics, /^webhook_ingest_busy_total 1$/m)
  for (const c of [...held, ...uploads]) c.sock.destroy()
}))

// #15 §2 as the issue measured it: the resident memory of a `hookstream run` process while 40 clients upload
// 10 MiB unsigned bodies (on 18694a2 it went from 125 to 469 MB; a Kubernetes limit of 512 Mi)
const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024

Service('the RSS of an ingest process stays within its in-flight budget while 40 clients upload 10 MiB unsigned bodies, and a signed webhook gets 202', withTimeLimit(180_000, async (ctx) => {
  // the defaults: INGEST_MAX_BODY 10 MiB, INGEST_MAX_INFLIGHT_BYTES 64 MiB
  ctx.svc = await startServiceProcess({ ...ctx.s.env }, `tools:\n  - { id: gh, provider: github, secret: ${SECRET} }\n`, ['--role', 'ingest'])
  const pid = ctx.svc.child.pid as number
  const port = Number(new URL(ctx.svc.ingestUrl).port)
  // warm: the first requests load the provider's code paths
  for (let i = 0; i < 3; i++) assert.is((await signedPush(port, '127.0.0.3', SECRET)).status, 202)
  const baseline = rssOf(pid)
  let peak = baseline
  const sampler = setInterval(() => { peak = Math.max(peak, rssOf(pid)) }, 10)
  const size = 10 * MiB
  const body = Buffer.alloc(size, 0x61)
  let uploads: RawClient[] = []
  try {
    uploads = await Promise.all(Array.from({ length: 40 }, () => rawClient(port, '127.0.0.2')))
    const written = uploads.map(() => false)
    uploads.forEach((u, i) => {
      // unsigned, everything but the last byte, which is held back
      u.sock.write(`POST /webhooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nContent-Length: ${size}\r\n\r\n`)
      u.sock.write(body.subarray(0, size - 1), () => { written[i] = true })
    })
    await waitFor('every upload to be answered or written', () => uploads.every((u, i) => u.status() !== undefined || written[i] || u.isClosed()))
    // what was admitted is in the process now; give the sampler a few more turns at the high-water mark
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.is((await signedPush(port, '127.0.0.3', SECRET)).status, 202)
    const held = uploads.filter((u) => u.status() === undefined && !u.isClosed())
    for (const u of held) u.sock.write('a')
    await waitFor('the admitted uploads to be answered', () => held.every((u) => u.status() !== undefined || u.isClosed()))
    peak = Math.max(peak, rssOf(pid))
  } finally {
    clearInterval(sampler)
    for (const u of uploads) u.sock.destroy()
  }
  // a refused upload is answered 503 and closed; its answer can be lost to the reset that closing a socket with
  // unread bytes sends, so a refusal is a 503 or a close without an answer
  const admitted = uploads.filter((u) => u.status() === 401).length
  const refused = uploads.filter((u) => u.status() === 503 || (u.status() === undefined && u.isClosed())).length
  // the bound: the 64 MiB budget, each admitted body once more while it is joined, and the allocator's slack;
  // without the budget all 40 bodies are held (+592 MiB with INGEST_MAX_INFLIGHT_BYTES=1GiB)
  console.log(`  RSS ${(baseline / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - baseline) / MiB).toFixed(0)}), ${admitted} admitted, ${refused} refused`)
  assert.ok(peak - baseline < 200 * MiB, `RSS grew by ${((peak - baseline) / MiB).toFixed(0)} MiB (bound 200 MiB)`)
  assert.ok(admitted >= 1 && admitted <= 6, `${admitted} of 40 uploads admitted (at most 6 × 10 MiB fit 64 MiB)`)
  assert.is(admitted + refused, 40)
}))

Service.run()
