import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'

interface Ctx { http?: RunningHttpServer }
const Abuse = suite<Ctx>('HTTP server abuse limits (raw sockets)', {})
Abuse.after.each(async (ctx) => { await ctx.http?.close(); ctx.http = undefined })

const routes = createRouter([{
  method: 'POST', path: '/echo', handler: async (req, res) => {
    let n = 0
    for await (const chunk of req) n += (chunk as Buffer).length
    res.writeHead(200, { 'content-type': 'text/plain' }).end(String(n))
  },
}])

/** Opens a socket and resolves once connected; `closed` resolves with ms since connect and what was received. */
async function open(port: number): Promise<{ sock: Socket; closed: Promise<{ afterMs: number; data: string }> }> {
  const sock = connect(port, '127.0.0.1')
  sock.on('error', () => {})
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  const started = Date.now()
  let data = ''
  sock.on('data', (d) => { data += d })
  const closed = new Promise<{ afterMs: number; data: string }>((resolve) => sock.once('close', () => resolve({ afterMs: Date.now() - started, data })))
  return { sock, closed }
}

/** Writes one byte of `text` every `everyMs` until the socket closes or the text ends. */
async function dribble(sock: Socket, text: string, everyMs: number): Promise<void> {
  for (const ch of text) {
    if (sock.destroyed || sock.writableEnded) return
    sock.write(ch)
    await sleep(everyMs)
  }
}

Abuse('a slowloris client sending headers one byte at a time is cut off after headersTimeoutMs', async (ctx) => {
  ctx.http = await startHttpServer('127.0.0.1:0', routes, { headersTimeoutMs: 600, requestTimeoutMs: 5000 })
  const { sock, closed } = await open(ctx.http.port)
  void dribble(sock, `POST /echo HTTP/1.1\r\nHost: x\r\n${'X-Slow: '.padEnd(400, 'a')}`, 50)
  const result = await Promise.race([closed, sleep(5000).then(() => undefined)])
  sock.destroy()
  assert.ok(result, 'the server closed the connection')
  assert.ok(result.afterMs >= 500 && result.afterMs < 2000, `closed after ${result.afterMs} ms (limit 600 ms)`)
  assert.match(result.data, /^HTTP\/1\.1 408/)
})

Abuse('a client that sends its body too slowly is cut off after requestTimeoutMs', async (ctx) => {
  ctx.http = await startHttpServer('127.0.0.1:0', routes, { headersTimeoutMs: 500, requestTimeoutMs: 1000 })
  const { sock, closed } = await open(ctx.http.port)
  sock.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n')
  void dribble(sock, 'a'.repeat(500), 50)
  const result = await Promise.race([closed, sleep(6000).then(() => undefined)])
  sock.destroy()
  assert.ok(result, 'the server closed the connection')
  assert.ok(result.afterMs >= 900 && result.afterMs < 2500, `closed after ${result.afterMs} ms (limit 1000 ms)`)
})

Abuse('connections beyond maxConnections are closed at once; after one leaves, a new client is served', async (ctx) => {
  ctx.http = await startHttpServer('127.0.0.1:0', routes, { maxConnections: 5, headersTimeoutMs: 5000, requestTimeoutMs: 10_000 })
  const held = []
  for (let i = 0; i < 5; i++) {
    const c = await open(ctx.http.port)
    c.sock.write('POST /echo HTTP/1.1\r\nHost: x\r\n') // incomplete: each holds its connection
    held.push(c)
  }
  await sleep(100)
  const extra = await Promise.all(Array.from({ length: 3 }, () => open(ctx.http!.port)))
  const closedExtra = await Promise.race([Promise.all(extra.map((e) => e.closed)), sleep(2000).then(() => undefined)])
  assert.ok(closedExtra, 'the connections over the cap were closed')
  assert.ok(closedExtra.every((c) => c.afterMs < 1000 && c.data === ''), JSON.stringify(closedExtra))
  assert.is(held.filter((h) => h.sock.destroyed).length, 0, 'the first five are untouched')
  held[0]!.sock.destroy()
  await held[0]!.closed
  await sleep(50)
  const res = await fetch(`${ctx.http.url}/echo`, { method: 'POST', body: 'hello' })
  assert.equal([res.status, await res.text()], [200, '5'])
  for (const h of held) h.sock.destroy()
})

Abuse('bad limits fail at start naming the option', async () => {
  try {
    await startHttpServer('127.0.0.1:0', routes, { maxConnections: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"maxConnections" must be an integer of at least 1; got 0/)
  }
})

Abuse.run()
