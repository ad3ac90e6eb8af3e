import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { openSpace, SECRET, type Space } from './fixture.js'

// #15 §2 as the issue measured it: the resident memory of a `hookstream run` process while 40 clients upload
// 10 MiB unsigned bodies (on 18694a2 it went from 125 to 469 MB; a Kubernetes limit of 512 Mi)
const MiB = 1024 * 1024
const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024

async function waitFor(what: string, done: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > deadline) assert.unreachable(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

interface Upload { readonly sock: Socket; received(): string; status(): number | undefined; closed(): boolean; written(): boolean }

function upload(port: number, body: Buffer): Upload {
  const sock = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' })
  let data = ''
  let closed = false
  let written = false
  sock.on('error', () => {})
  sock.on('data', (d) => { data += d.toString('latin1') })
  sock.once('close', () => { closed = true })
  // unsigned, everything but the last byte, which is held back
  sock.write(`POST /webhooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nContent-Length: ${body.length}\r\n\r\n`)
  sock.write(body.subarray(0, body.length - 1), () => { written = true })
  return { sock, received: () => data, status: () => { const m = /^HTTP\/1\.1 (\d{3})/.exec(data); return m ? Number(m[1]) : undefined }, closed: () => closed, written: () => written }
}

function signedPush(port: number): Promise<number> {
  const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, localAddress: '127.0.0.3', method: 'POST', path: '/webhooks/gh', agent: false, headers: {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
    req.on('error', reject)
    req.end(body)
  })
}

const Rss = suite<{ s: Space; svc?: ServiceProcess }>('front door: resident memory of hookstream run under 40 unsigned 10 MiB uploads', {} as { s: Space })
Rss.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Rss.after.each((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  s: (s) => s.close(),
}))

Rss('the RSS of an ingest process stays within its in-flight budget while 40 clients upload 10 MiB unsigned bodies, and a signed webhook gets 202', withTimeLimit(180_000, async (ctx) => {
  // the defaults: INGEST_MAX_BODY 10 MiB, INGEST_MAX_INFLIGHT_BYTES 64 MiB
  ctx.svc = await startServiceProcess({ ...ctx.s.env }, `tools:\n  - { id: gh, provider: github, secret: ${SECRET} }\n`, ['--role', 'ingest'])
  const pid = ctx.svc.child.pid as number
  const port = Number(new URL(ctx.svc.ingestUrl).port)
  // warm: the first requests load the provider's code paths
  for (let i = 0; i < 3; i++) assert.is(await signedPush(port), 202)
  const baseline = rssOf(pid)
  let peak = baseline
  const sampler = setInterval(() => { peak = Math.max(peak, rssOf(pid)) }, 10)
  const body = Buffer.alloc(10 * MiB, 0x61)
  let uploads: Upload[] = []
  try {
    uploads = Array.from({ length: 40 }, () => upload(port, body))
    await waitFor('every upload to be answered or written', () => uploads.every((u) => u.status() !== undefined || u.written() || u.closed()))
    // what was admitted is in the process now; give the sampler a few more turns at the high-water mark
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.is(await signedPush(port), 202)
    const held = uploads.filter((u) => u.status() === undefined && !u.closed())
    for (const u of held) u.sock.write('a')
    await waitFor('the admitted uploads to be answered', () => held.every((u) => u.status() !== undefined || u.closed()))
    peak = Math.max(peak, rssOf(pid))
  } finally {
    clearInterval(sampler)
    for (const u of uploads) u.sock.destroy()
  }
  // a refused upload is answered 503 and closed; its answer can be lost to the reset that closing a socket with
  // unread bytes sends, so a refusal is a 503 or a close without an answer
  const admitted = uploads.filter((u) => u.status() === 401).length
  const refused = uploads.filter((u) => u.status() === 503 || (u.status() === undefined && u.closed())).length
  // the bound: the 64 MiB budget, each admitted body once more while it is joined, and the allocator's slack;
  // without the budget all 40 bodies are held (+592 MiB with INGEST_MAX_INFLIGHT_BYTES=1GiB)
  console.log(`  RSS ${(baseline / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - baseline) / MiB).toFixed(0)}), ${admitted} admitted, ${refused} refused`)
  assert.ok(peak - baseline < 200 * MiB, `RSS grew by ${((peak - baseline) / MiB).toFixed(0)} MiB (bound 200 MiB)`)
  assert.ok(admitted >= 1 && admitted <= 6, `${admitted} of 40 uploads admitted (at most 6 × 10 MiB fit 64 MiB)`)
  assert.is(admitted + refused, 40)
}))

Rss.run()
