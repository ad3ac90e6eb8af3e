import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { eventually } from '../helpers/events.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { openSpace, toolsYaml, type Space } from '../reliability/fixture.js'

// The admin API on its own listener (ADMIN_ADDR), checked on `hookstream run` itself.
interface Ctx { s: Space; svc?: ServiceProcess }
const Listener = suite<Ctx>('hookstream run: the admin API listens apart from ingest', {} as Ctx)
Listener.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Listener.after.each((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  s: (s) => s.close(),
}))

const TOKEN = 'admin-token-0123456789abcdef'
const bearer = { authorization: `Bearer ${TOKEN}` }

/** Every method on a few admin paths of the ingest port: each must be the plain 404 of an unknown path. */
async function assertIngestHidesAdmin(svc: ServiceProcess): Promise<void> {
  for (const path of ['/admin/tools', '/admin/tools/x', '/admin/dlq/1/retry']) {
    for (const method of ['GET', 'PUT', 'POST', 'PATCH', 'DELETE']) {
      const res = await fetch(`${svc.ingestUrl}${path}`, { method, headers: bearer })
      const body = await res.json() as { error: { code: string } }
      assert.equal([res.status, body.error.code, res.headers.get('allow')], [404, 'NOT_FOUND', null], `${method} ${path} on the ingest port`)
    }
  }
}

/** A raw TCP connection to `url`'s port, kept open; `closed` turns true once the server drops it. */
function hold(url: string): Promise<{ socket: Socket; closed: () => boolean }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    let closed = false
    const socket = connect(Number(port), hostname)
    socket.on('close', () => { closed = true })
    socket.on('error', () => {})
    socket.once('connect', () => resolve({ socket, closed: () => closed }))
    socket.once('error', reject)
  })
}

function refused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(true))
  })
}

Listener('with ADMIN_TOKEN the admin API answers on ADMIN_ADDR, and the ingest port answers 404 to every /admin request', withTimeLimit(180_000, async (ctx) => {
  ctx.svc = await startServiceProcess({ ...ctx.s.env, ADMIN_TOKEN: TOKEN, HTTP_MAX_CONNECTIONS: '4' }, toolsYaml({ first: undefined }))
  const listed = await fetch(`${ctx.svc.adminUrl}/admin/tools`, { headers: bearer })
  assert.is(listed.status, 200)
  assert.equal(((await listed.json()) as { tools: { id: string }[] }).tools.map((t) => t.id), ['first'])
  await assertIngestHidesAdmin(ctx.svc)
  // the webhooks are not on the admin listener either
  assert.is((await fetch(`${ctx.svc.adminUrl}/webhooks/first`, { method: 'POST', body: '{}' })).status, 404)
  // ingest clients holding every ingest connection (HTTP_MAX_CONNECTIONS 4) do not lock the operator out
  const held = await Promise.all(Array.from({ length: 10 }, () => hold(ctx.svc!.ingestUrl)))
  try {
    await eventually('the ingest port is full and drops connections past its cap', () => held.some((h) => h.closed()), 10_000)
    const during = await fetch(`${ctx.svc.adminUrl}/admin/tools`, { headers: bearer })
    assert.is(during.status, 200)
    await during.text()
  } finally {
    for (const h of held) h.socket.destroy()
  }
  for (let i = 0; i < 5; i++) assert.is((await fetch(`${ctx.svc.adminUrl}/admin/tools`, { headers: { authorization: `Bearer wrong-token-${i}-0123456789` } })).status, 401)
  const throttled = await fetch(`${ctx.svc.adminUrl}/admin/tools`, { headers: bearer })
  assert.equal([throttled.status, ((await throttled.json()) as { error: { code: string } }).error.code], [429, 'ADMIN_LOGIN_THROTTLED'])
  assert.ok(Number(throttled.headers.get('retry-after')) >= 1)
}))

/** GET `path` on `url` from the loopback address `from` (127.0.0.0/8 is all local on Linux), on a connection of its own. */
function getFrom(url: string, path: string, from: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { localAddress: from, agent: false, headers: bearer }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

Listener('one client holding open connections cannot take the whole admin listener: another operator still gets in', withTimeLimit(180_000, async (ctx) => {
  ctx.svc = await startServiceProcess({ ...ctx.s.env, ADMIN_TOKEN: TOKEN }, toolsYaml({ first: undefined }))
  // 64 connections (the admin listener's cap) from one address that never send a request: each stays until the
  // header timeout (10 s), and a client can open them again as fast as they are dropped
  const held = await Promise.all(Array.from({ length: 64 }, () => hold(ctx.svc!.adminUrl)))
  try {
    assert.is(await getFrom(ctx.svc.adminUrl, '/admin/tools', '127.0.0.2'), 200, 'an operator from another address gets in')
    assert.ok(held.some((h) => h.closed()), 'the one client was held to its share')
  } finally {
    for (const h of held) h.socket.destroy()
  }
}))

Listener('ADMIN_ADDR=off runs no admin listener, and the ingest port still hides /admin', withTimeLimit(180_000, async (ctx) => {
  ctx.svc = await startServiceProcess({ ...ctx.s.env, ADMIN_TOKEN: TOKEN, ADMIN_ADDR: 'off' }, toolsYaml({ first: undefined }))
  await assertIngestHidesAdmin(ctx.svc)
  assert.ok(await refused(ctx.svc.adminUrl), 'nothing listens on the admin port')
}))

Listener('without ADMIN_TOKEN no admin listener runs, and /admin on the ingest port is a plain 404', withTimeLimit(180_000, async (ctx) => {
  ctx.svc = await startServiceProcess(ctx.s.env, toolsYaml({ first: undefined }))
  await assertIngestHidesAdmin(ctx.svc)
  assert.ok(await refused(ctx.svc.adminUrl), 'nothing listens on the admin port')
}))

Listener.run()
