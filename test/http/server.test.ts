import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { request } from 'node:http'
import { createRouter, startHttpServer } from '../../src/http/server.js'

const Server = suite('http server')

Server('routes by method and path pattern, with decoded params; 404 and 405 are JSON errors', async () => {
  const seen: string[] = []
  const http = await startHttpServer('127.0.0.1:0', createRouter([
    { method: 'POST', path: '/webhooks/:toolId', handler: (_req, res, params) => { seen.push(params.toolId!); res.end('ok') } },
    { method: 'GET', path: '/boom', handler: () => { throw new Error('secret detail') } },
  ]))
  try {
    assert.match(http.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.is(await (await fetch(`${http.url}/webhooks/a%20b?x=1`, { method: 'POST' })).text(), 'ok')
    assert.equal(seen, ['a b'])
    const missing = await fetch(`${http.url}/nope`)
    assert.is(missing.status, 404)
    assert.is(((await missing.json()) as any).error.code, 'NOT_FOUND')
    const wrong = await fetch(`${http.url}/webhooks/a`)
    assert.is(wrong.status, 405)
    assert.is(wrong.headers.get('allow'), 'POST')
    assert.is(((await wrong.json()) as any).error.code, 'METHOD_NOT_ALLOWED')
    const boom = await fetch(`${http.url}/boom`)
    assert.is(boom.status, 500)
    const body = await boom.text()
    assert.is(JSON.parse(body).error.code, 'INTERNAL_ERROR')
    assert.not.match(body, /secret detail/)
    assert.is(seen.length, 1)
  } finally {
    await http.close()
  }
})

Server('sets header, request and keep-alive timeouts', async () => {
  const http = await startHttpServer({ host: '127.0.0.1', port: 0 }, createRouter([]), { headersTimeoutMs: 4000, requestTimeoutMs: 9000 })
  try {
    assert.is(http.server.headersTimeout, 4000)
    assert.is(http.server.requestTimeout, 9000)
    assert.is(http.server.keepAliveTimeout, 5000)
  } finally {
    await http.close()
  }
})

Server('close() is idempotent, closes idle keep-alive connections and returns promptly', async () => {
  const http = await startHttpServer('127.0.0.1:0', createRouter([{ method: 'GET', path: '/', handler: (_q, res) => { res.end("hi") } }]),
    { keepAliveTimeoutMs: 60_000 })
  const agentSocketClosed = new Promise<void>((resolve) => {
    const req = request(`${http.url}/`, { headers: { connection: 'keep-alive' } }, (res) => {
      res.resume()
      res.on('end', () => req.socket?.once('close', () => resolve()))
    })
    req.end()
  })
  await new Promise((r) => setTimeout(r, 100))
  const started = Date.now()
  const first = http.close()
  assert.is(http.close(), first)
  await first
  await agentSocketClosed
  assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`)
  assert.not.ok(http.server.listening)
})

Server.run()
