import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { createServer, request } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import { InflightBudget, ingestBudget } from '../../src/http/inflight-budget.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { sharedRedis } from '../helpers/servers.js'
import { startIngest, type IngestHarness } from './providers/ingest-harness.js'

// The in-flight body budget's accounting and a tool's own max_body, on a real ingest endpoint
const Limits = suite<{ h?: IngestHarness; budget?: InflightBudget }>('ingest limits: in-flight budget and per-tool max_body', {})
Limits.before(async (ctx) => {
  // shares as large as the budget: these tests are about the whole budget's accounting (the shares have their own)
  ctx.budget = new InflightBudget(1024 * 1024, { perClientBytes: 1024 * 1024, perToolBytes: 1024 * 1024 })
  ctx.h = await startIngest((await sharedRedis()).url, { maxBodyBytes: 256 * 1024, inflightBudget: ctx.budget })
  ctx.h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
  ctx.h.addTool({ id: 'gh-small', provider: 'github', secret: 'gh-secret', max_body: '1KiB' })
})
Limits.after(async (ctx) => { await ctx.h?.close() })

const KiB = 1024
const sign = (body: string | Buffer) => `sha256=${createHmac('sha256', 'gh-secret').update(body).digest('hex')}`
const gh = (body: string | Buffer) => ({
  'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sign(body),
})

async function waitFor(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > deadline) assert.unreachable(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Starts an unsigned upload to `tool` with these headers and `sent` body bytes; the rest is never sent. */
async function upload(port: number, tool: string, lengthHeader: string, sent: Buffer, from = '127.0.0.1'): Promise<{ sock: Socket; received: () => string }> {
  const sock = connect({ port, host: '127.0.0.1', localAddress: from })
  let data = ''
  sock.on('error', () => {})
  sock.on('data', (d) => { data += d })
  await new Promise<void>((resolve) => sock.once('connect', resolve))
  sock.write(`POST /webhooks/${tool} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n${lengthHeader}\r\n\r\n`)
  sock.write(sent)
  return { sock, received: () => data }
}

/** A signed GitHub push to `tool` sent from the local address `from` (any 127.x is this host). */
function postFrom(from: string, port: number, tool: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, localAddress: from, method: 'POST', path: `/webhooks/${tool}`, headers: gh(body), agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d: string) => { text += d }).on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

Limits('the budget is taken by declared lengths, refuses 503 INGEST_BUSY past it, keeps room for small bodies, and returns to 0 after aborted uploads', async ({ h, budget }) => {
  const declared = 200 * KiB
  const uploads: Awaited<ReturnType<typeof upload>>[] = []
  // 4 × 200 KiB fit the 7/8 of 1 MiB that large bodies may take; the fifth does not
  for (let i = 0; i < 5; i++) uploads.push(await upload(h!.port, 'gh', `Content-Length: ${declared}`, Buffer.alloc(100 * KiB, 0x61)))
  await waitFor('four uploads admitted and one refused', () => budget!.usedBytes === 4 * declared && uploads.some((u) => u.received() !== ''))
  const refused = uploads.filter((u) => u.received() !== '')
  assert.is(refused.length, 1)
  assert.match(refused[0]!.received(), /^HTTP\/1\.1 503 /)
  assert.match(refused[0]!.received(), /"code":"INGEST_BUSY"/)
  assert.match(refused[0]!.received(), /INGEST_MAX_INFLIGHT_BYTES/)
  // a small signed webhook still fits: the last eighth is kept for bodies of at most 1/16 of the budget
  const push = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
  const ok = await h!.post('gh', push, gh(push))
  assert.is(ok.status, 202)
  for (const u of uploads) u.sock.destroy()
  await waitFor('the aborted uploads to give their bytes back', () => budget!.usedBytes === 0)
  assert.is(budget!.usedBytes, 0)
})

Limits('a chunked upload reserves as it is read, is refused once the budget cannot spare a chunk, and gives everything back when aborted', async ({ h, budget }) => {
  const holders: Awaited<ReturnType<typeof upload>>[] = []
  for (let i = 0; i < 4; i++) holders.push(await upload(h!.port, 'gh', 'Content-Length: 204800', Buffer.alloc(10)))
  await waitFor('the holders admitted', () => budget!.usedBytes === 4 * 204_800)
  const chunk = Buffer.alloc(64 * KiB, 0x61)
  const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
  const chunked = await upload(h!.port, 'gh', 'Transfer-Encoding: chunked', Buffer.concat([frame, frame, frame]))
  await waitFor('the chunked upload refused', () => chunked.received() !== '')
  assert.match(chunked.received(), /^HTTP\/1\.1 503 /)
  assert.match(chunked.received(), /"code":"INGEST_BUSY"/)
  for (const u of [...holders, chunked]) u.sock.destroy()
  await waitFor('every byte given back', () => budget!.usedBytes === 0)
  const alone = await upload(h!.port, 'gh', 'Transfer-Encoding: chunked', frame)
  await waitFor('a chunked upload alone to hold its chunk', () => budget!.usedBytes === chunk.length)
  alone.sock.destroy()
  await waitFor('its chunk given back', () => budget!.usedBytes === 0)
})

Limits('a body over the tool\'s max_body is 413 naming the tool\'s limit, by Content-Length or while streaming; within it, 202', async ({ h, budget }) => {
  const before = await h!.length()
  const big = Buffer.alloc(2 * KiB, 0x61)
  const declared = await h!.post('gh-small', big, gh(big))
  assert.is(declared.status, 413)
  assert.is(declared.json.error.code, 'PAYLOAD_TOO_LARGE')
  assert.match(declared.json.error.message, /tool "gh-small"'s limit of 1024 bytes \(its max_body\)/)
  const chunks = [Buffer.alloc(700, 0x61), Buffer.alloc(700, 0x62)]
  const streamed = await fetch(`${h!.url}/webhooks/gh-small`, {
    method: 'POST', headers: gh('x'), duplex: 'half',
    body: new ReadableStream({ pull(c) { const next = chunks.shift(); if (next) c.enqueue(next); else c.close() } }),
  } as RequestInit)
  assert.is(streamed.status, 413)
  assert.match(((await streamed.json()) as any).error.message, /max_body/)
  // the same 2 KiB is fine for a tool without its own limit
  const push = JSON.stringify({ ref: 'refs/heads/main', pad: 'x'.repeat(1500) })
  assert.is((await h!.post('gh', push, gh(push))).status, 202)
  const small = JSON.stringify({ ref: 'refs/heads/main' })
  assert.is((await h!.post('gh-small', small, gh(small))).status, 202)
  assert.is(await h!.length(), before + 2)
  await waitFor('every byte given back', () => budget!.usedBytes === 0)
})

Limits('uploads that declare a length and send nothing, from one address, cannot shut ingest for other senders', async () => {
  // the service's budget (64 MiB, bodies up to 10 MiB); one address declares 64 MiB in 9 uploads and sends no body
  const budget = ingestBudget(64 * 1024 * KiB, 10 * 1024 * KiB)
  const h = await startIngest((await sharedRedis()).url, { inflightBudget: budget })
  const held: { upload: Awaited<ReturnType<typeof upload>>; bytes: number }[] = []
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    for (const mib of [10, 10, 10, 10, 10, 4, 4, 4, 2]) {
      held.push({ upload: await upload(h.port, 'gh', `Content-Length: ${mib * 1024 * KiB}`, Buffer.alloc(0)), bytes: mib * 1024 * KiB })
    }
    // every upload either refused or holding its bytes (an unanswered one not yet reserved keeps the sum above)
    const refused = (u: { upload: Awaited<ReturnType<typeof upload>> }) => u.upload.received().endsWith('}')
    await waitFor('each upload admitted or refused', () => held.reduce((sum, u) => sum + (refused(u) ? 0 : u.bytes), 0) === budget.usedBytes)
    // a signed webhook from another address, to the same tool, is taken
    const push = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
    const res = await postFrom('127.0.0.2', h.port, 'gh', push)
    assert.is(res.status, 202, res.body)
    assert.is(budget.usedBytes, 16 * 1024 * KiB, 'the address holds its quarter of the budget')
    assert.ok(held.filter(refused).every((u) => /^HTTP\/1\.1 503 [^]*this client's requests hold its share of ingest's in-flight budget \(16777216 bytes/.test(u.upload.received())))
  } finally {
    for (const u of held) u.upload.sock.destroy()
    await h.close()
  }
})

Limits('one tool\'s uploads hold at most its share, so another tool\'s senders still get in', async () => {
  // 1 MiB in all: 256 KiB per client, 512 KiB per tool
  const budget = ingestBudget(1024 * KiB, 256 * KiB)
  assert.equal([budget.perClientBytes, budget.perToolBytes], [256 * KiB, 512 * KiB])
  const h = await startIngest((await sharedRedis()).url, { maxBodyBytes: 256 * KiB, inflightBudget: budget })
  const held: Awaited<ReturnType<typeof upload>>[] = []
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    h.addTool({ id: 'gh-other', provider: 'github', secret: 'gh-secret' })
    // two addresses, 200 KiB each, to one tool: 400 KiB held; a third would take the tool past 512 KiB
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) held.push(await upload(h.port, 'gh', `Content-Length: ${200 * KiB}`, Buffer.alloc(0), from))
    await waitFor('the third upload refused', () => held[2]!.received().endsWith('}') && budget.usedBytes === 400 * KiB)
    assert.match(held[2]!.received(), /the requests to tool \\"gh\\" hold its share of ingest's in-flight budget \(524288 bytes/)
    assert.is(held[0]!.received(), '', 'the first two are still being read')
    assert.is(held[1]!.received(), '')
    const push = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
    assert.is((await h.post('gh-other', push, gh(push))).status, 202)
    for (const u of held) u.sock.destroy()
    await waitFor('every byte given back', () => budget.usedBytes === 0)
    assert.is((await h.post('gh', push, gh(push))).status, 202, 'the tool is served again once its uploads went')
  } finally {
    for (const u of held) u.sock.destroy()
    await h.close()
  }
})

Limits('a budget whose shares cannot admit one body of the largest size is refused when the handler is made', async () => {
  const redis = (await sharedRedis()).url
  await startIngest(redis, { maxBodyBytes: 512 * KiB, inflightBudget: new InflightBudget(1024 * KiB) }).then(
    () => assert.unreachable('a budget of 256 KiB per client was accepted for 512 KiB bodies'),
    (err: Error) => assert.match(err.message, /perClientBytes and perToolBytes must each be at least "maxBodyBytes" \(524288\)/))
  assert.throws(() => new InflightBudget(1024, { perClientBytes: 2048 }), /"perClientBytes" must be an integer from 1 to "limitBytes" \(1024\); got 2048/)
})

Limits('a request waiting for Redis holds its body, not its parsed payload', async () => {
  const gc = (globalThis as { gc?: () => void }).gc
  assert.ok(gc, 'run with --expose-gc (npm test does)')
  // measured when the entry goes to Redis: everything before is done, everything after waits on the round trip
  let heapAtAdd = 0
  class Measured extends StreamClient {
    override addOnce(...args: Parameters<StreamClient['addOnce']>): ReturnType<StreamClient['addOnce']> {
      gc!()
      heapAtAdd = process.memoryUsage().heapUsed
      return super.addOnce(...args)
    }
  }
  const redis = (await sharedRedis()).url
  const keys = streamKeys({ prefix: `mem-${randomUUID()}:` })
  const client = new Redis(redis)
  const h = await startIngest(redis, { keys, stream: new Measured({ redis: client, stream: keys.stream }) })
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    // 4 MiB of empty objects: ~1.4 million of them once parsed
    const body = `[${'{},'.repeat(4 * 1024 * KiB / 3)}{}]`
    gc!()
    const before = process.memoryUsage().heapUsed
    const res = await h.post('gh', body, gh(body))
    assert.is(res.status, 202)
    const held = heapAtAdd - before
    // the body's text (4 MiB) is the entry's payload; its ~1.4 million objects are not held
    assert.ok(held < 16 * 1024 * KiB, `${(held / 1024 / KiB).toFixed(1)} MiB more heap while the entry went to Redis`)
  } finally {
    await h.close()
    client.disconnect()
  }
})

Limits('a request whose client left before its body was reserved takes nothing from the budget', async () => {
  const budget = new InflightBudget(1024 * 1024)
  const taken: boolean[] = []
  let arrived = false
  const server = createServer(async (req, res) => {
    arrived = true
    await new Promise((resolve) => (req.socket.destroyed ? resolve(undefined) : req.socket.once('close', resolve)))
    taken.push(budget.reserveFor(res).take(100))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const sock = connect((server.address() as AddressInfo).port, '127.0.0.1')
    sock.on('error', () => {})
    sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc')
    await waitFor('the request to arrive', () => arrived)
    sock.destroy()
    await waitFor('the handler to reserve after the client left', () => taken.length === 1)
    assert.equal(taken, [false])
    assert.is(budget.usedBytes, 0)
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

Limits('the in-flight gauge and the refusal counter are exported', async () => {
  const metrics = createMetrics({ defaultMetrics: false })
  let used = 12_345
  metrics.setInflightBytes(() => used)
  metrics.ingestBusy()
  metrics.connectionClosed('client_cap')
  metrics.connectionClosed('client_cap')
  metrics.connectionClosed('idle_reaped')
  const text = await metrics.metricsText()
  assert.match(text, /^webhook_ingest_inflight_bytes 12345$/m)
  assert.match(text, /^webhook_ingest_busy_total 1$/m)
  assert.match(text, /^webhook_http_connections_closed_total\{reason="client_cap"\} 2$/m)
  assert.match(text, /^webhook_http_connections_closed_total\{reason="idle_reaped"\} 1$/m)
  used = 0
  assert.match(await metrics.metricsText(), /^webhook_ingest_inflight_bytes 0$/m)
  metrics.close()
})

Limits.run()
