import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import type { Socket } from 'node:net'
import { Redis } from 'ioredis'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { adminRoutes, type AdminOptions } from '../../src/http/admin.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'

const TOKEN = 'admin-token-0123456789abcdef'

interface Ctx { handle?: Db; redis?: Redis; registry?: ToolRegistry; options?: AdminOptions; http?: RunningHttpServer }
const Throttle = suite<Ctx>('admin API: failed-login throttle over real sockets', {})

Throttle.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 2 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  const keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  const toolStore = new ToolStore({ db: ctx.handle.db })
  ctx.registry = new ToolRegistry({ store: toolStore, refreshMs: 60_000 })
  ctx.options = { db: ctx.handle.db, redis: ctx.redis, keys, tools: ctx.registry, toolStore, token: TOKEN, stream: new StreamClient({ redis: ctx.redis, stream: keys.stream }) }
})
Throttle.after.each((ctx) => release(ctx, { http: (h) => h.close(), registry: (r) => r.close(), handle: (h) => h.close(), redis: (r) => r.disconnect() }))

interface Answer { status: number; retryAfter: string | undefined; code: string | undefined }

/** GET /admin/tools from the given loopback source address (127.0.0.0/8 is all local on Linux), one connection per call. */
function get(http: RunningHttpServer, from: string, token: string | null): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${http.url}/admin/tools`, { localAddress: from, agent: false, headers: token === null ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        const body = text ? JSON.parse(text) as { error?: { code?: string } } : {}
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], code: body.error?.code })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

Throttle('after 5 wrong tokens an address gets 429 with Retry-After, even with the right token; another address is not affected', async (ctx) => {
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes(ctx.options!)))
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await get(ctx.http, '127.0.0.1', `wrong-token-${i}-0123456789`)).status)
  assert.equal(statuses, [401, 401, 401, 401, 401])
  for (const token of ['wrong-token-again-0123456789', TOKEN]) {
    const refused = await get(ctx.http, '127.0.0.1', token)
    assert.is(refused.status, 429)
    assert.is(refused.code, 'ADMIN_LOGIN_THROTTLED')
    const seconds = Number(refused.retryAfter)
    assert.ok(Number.isInteger(seconds) && seconds >= 1 && seconds <= 60, `Retry-After ${refused.retryAfter}`)
  }
  assert.is((await get(ctx.http, '127.0.0.2', TOKEN)).status, 200)
  assert.is((await get(ctx.http, '127.0.0.3', 'wrong-token-elsewhere-0123')).status, 401)
})

Throttle('a success resets only its own address: the failures of another address still count', async (ctx) => {
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes(ctx.options!)))
  for (let i = 0; i < 4; i++) assert.is((await get(ctx.http, '127.0.0.4', `wrong-token-${i}-0123456789`)).status, 401)
  assert.is((await get(ctx.http, '127.0.0.5', TOKEN)).status, 200)
  assert.is((await get(ctx.http, '127.0.0.4', 'wrong-token-last-0123456789')).status, 401)
  assert.is((await get(ctx.http, '127.0.0.4', TOKEN)).status, 429)
  // a request without a bearer token guesses nothing: it is not counted, so an operator's probe never locks them out
  for (let i = 0; i < 10; i++) assert.is((await get(ctx.http, '127.0.0.6', null)).status, 401)
  assert.is((await get(ctx.http, '127.0.0.6', TOKEN)).status, 200)
})

Throttle('once the window has passed, the address may log in again', async (ctx) => {
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes({ ...ctx.options!, loginThrottle: { maxFailures: 2, windowMs: 1000 } })))
  assert.is((await get(ctx.http, '127.0.0.7', 'wrong-token-a-0123456789')).status, 401)
  assert.is((await get(ctx.http, '127.0.0.7', 'wrong-token-b-0123456789')).status, 401)
  const refused = await get(ctx.http, '127.0.0.7', TOKEN)
  assert.is(refused.status, 429)
  assert.is(refused.retryAfter, '1')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  assert.is((await get(ctx.http, '127.0.0.7', TOKEN)).status, 200)
})

Throttle('an IPv6 client is throttled per /64, as the connection cap counts it: rotating addresses inside its prefix gains no guesses', async (ctx) => {
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(adminRoutes(ctx.options!)))
  // this box has one address per IPv6 /64, so each connection is given the next address of one /64 as if it came
  // from there (before the server's own listeners see it); the sockets, the server and the admin API are real
  const addresses = ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:aaaa::3', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::5', '2001:db8:1:2::6', '2001:db8:1:3::1']
  let next = 0
  ctx.http.server.prependListener('connection', (socket: Socket) => {
    Object.defineProperty(socket, 'remoteAddress', { value: addresses[next++] })
  })
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await get(ctx.http, '127.0.0.1', `wrong-token-${i}-0123456789`)).status)
  assert.equal(statuses, [401, 401, 401, 401, 401, 429])
  assert.is((await get(ctx.http, '127.0.0.1', TOKEN)).status, 200, 'another /64 is another client')
})

Throttle.run()
