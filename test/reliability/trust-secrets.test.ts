import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { openSpace, type Space } from './fixture.js'
import { release } from '../helpers/release.js'
import { parseTool } from '../../src/core/tool.js'
import { ToolStore } from '../../src/db/tool-store.js'

const ADMIN_TOKEN = 'admin-token-0123456789abcdef'
// every value a test must never find in an API body, audit row, DLQ row or log line
const LEAKS = ['pw-leak', 'tok-leak', 'hdr-leak', 'inbound-old-secret', 'inbound-new-secret', 'cookie-leak', 'apikey-leak', 'shop-leak', 'sig-leak', 'whsec_']

const Trust = suite<{ s: Space; svc?: ServiceProcess }>('secrets and egress through the running service', {} as { s: Space })
Trust.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Trust.after.each((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  s: (s) => s.close(),
}))

interface Seen { readonly headers: IncomingHttpHeaders; readonly body: string; readonly url: string }

async function receiver(status: () => number, host = '127.0.0.1') {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => { seen.push({ headers: req.headers, body, url: req.url ?? '' }); res.writeHead(status()).end() })
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  return { seen, port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }) }
}

async function admin(svc: ServiceProcess, method: string, path: string, body?: unknown): Promise<{ status: number; text: string; json: any }> {
  const res = await fetch(`${svc.adminUrl}${path}`, {
    method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined }
}

function githubPost(svc: ServiceProcess, toolId: string, secret: string, extra: Record<string, string> = {}) {
  const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'acme/api' } })
  return fetch(`${svc.ingestUrl}/webhooks/${toolId}`, {
    method: 'POST', body,
    headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': crypto.randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`, ...extra },
  }).then(async (r) => { await r.text(); return r.status })
}

function assertNoLeak(where: string, text: string): void {
  const found = LEAKS.filter((l) => text.includes(l))
  assert.equal(found, [], `${where} leaks ${found.join(', ')}`)
}

const env = (s: Space) => ({ ...s.env, ADMIN_TOKEN, HOOKSTREAM_ENCRYPTION_KEY: 'a passphrase of sixteen+ chars', FORWARD_ALLOW_PRIVATE: '127.0.0.1/32',
  LOG_LEVEL: 'debug', WORKER_CONSUMER_NAME: 'trust-1', WORKER_BLOCK_TIMEOUT: '200ms' })

Trust('forward URL credentials and query tokens, forward headers and inbound credential headers stay out of API bodies, audit rows, DLQ rows and logs; the receiver gets them only where meant', async (ctx) => {
  let status = 200
  const dest = await receiver(() => status)
  ctx.svc = await startServiceProcess(env(ctx.s), 'tools: []\n')
  try {
    const url = `http://bot:pw-leak@127.0.0.1:${dest.port}/hook?token=tok-leak&v=2`
    const created = await admin(ctx.svc, 'PUT', '/admin/tools/fw', {
      provider: 'github', secret: 'inbound-old-secret', processing_mode: 'store_and_forward', forward_url: url,
      forward_headers: { 'X-Dest-Key': 'hdr-leak' },
    })
    assert.is(created.status, 201, created.text)
    const forwardSecret: string = created.json.forward_secret
    assert.match(forwardSecret, /^whsec_[A-Za-z0-9+/]{43}=$/)
    assert.is(created.json.tool.forward_url, `http://bot:****@127.0.0.1:${dest.port}/hook?token=****&v=****`)
    assert.equal(created.json.tool.forward_headers, { 'x-dest-key': '********' })
    const { forward_secret: _shownOnce, ...rest } = created.json
    assertNoLeak('PUT response (apart from the forward secret shown once)', JSON.stringify(rest))
    const shown = await admin(ctx.svc, 'GET', '/admin/tools/fw')
    assertNoLeak('GET /admin/tools/fw', shown.text)
    assertNoLeak('GET /admin/tools', (await admin(ctx.svc, 'GET', '/admin/tools')).text)
    // a GET → PUT round trip keeps the stored URL (with its credentials), secret and headers
    const { source: _s, ...edit } = shown.json.tool
    assert.is((await admin(ctx.svc, 'PUT', '/admin/tools/fw', { ...edit, enabled: true })).status, 200)

    assert.is(await githubPost(ctx.svc, 'fw', 'inbound-old-secret', {
      authorization: 'Bearer tok-leak', cookie: 'session=cookie-leak', 'x-api-key': 'apikey-leak', 'x-shop-token': 'shop-leak',
      'x-custom-signature': 'sig-leak', 'x-keep-me': 'visible',
    }), 202)
    await eventually('forwarded', () => dest.seen.length >= 1, 15_000)
    const got = dest.seen[0]!
    // the receiver gets the URL's query and Basic credentials, the forward header, and a signature its secret verifies
    assert.is(got.url, '/hook?token=tok-leak&v=2')
    assert.is(got.headers.authorization, `Basic ${Buffer.from('bot:pw-leak').toString('base64')}`)
    assert.is(got.headers['x-dest-key'], 'hdr-leak')
    new Webhook(forwardSecret).verify(got.body, got.headers as Record<string, string>)
    // but none of the sender's credential headers: they were dropped before the event was queued
    const forwardedHeaders = JSON.parse(got.body).metadata.headers as Record<string, string>
    assert.equal(['authorization', 'cookie', 'x-api-key', 'x-shop-token', 'x-custom-signature', 'x-hub-signature-256'].filter((h) => h in forwardedHeaders), [])
    assert.is(forwardedHeaders['x-keep-me'], 'visible')
    assertNoLeak('the forwarded event', got.body)
    const stored = await ctx.s.db.db.selectFrom('webhook_events').select(['payload']).execute()
    assert.is(stored.length, 1)

    status = 404
    assert.is(await githubPost(ctx.svc, 'fw', 'inbound-old-secret'), 202)
    await eventually('dead-lettered', async () => (await ctx.s.rows('webhook_dlq')) === 1, 15_000)
    const dlq = await ctx.s.db.db.selectFrom('webhook_dlq').select(['error', 'event']).execute()
    assert.match(dlq[0]!.error, /HTTP 404 from http:\/\/bot:\*\*\*\*@127\.0\.0\.1:\d+\/hook\?token=\*\*\*\*&v=\*\*\*\*/)
    assertNoLeak('the DLQ row', JSON.stringify(dlq))
    const audit = await ctx.s.db.db.selectFrom('webhook_audit_log').select(['action', 'details']).execute()
    assert.ok(audit.length >= 2)
    assertNoLeak('the audit rows', JSON.stringify(audit))
    const raw = await ctx.s.db.db.selectFrom('webhook_tools').selectAll().execute()
    assertNoLeak('the webhook_tools row (secrets encrypted at rest)', JSON.stringify(raw.map(({ forward_url: _u, ...r }) => r)))
    assert.ok(ctx.svc.output().length > 0, 'the service logged at debug')
    assertNoLeak('the service log', ctx.svc.output())
  } finally {
    await dest.close()
  }
})

Trust('inbound rotation: both secrets verify until the old one is retired (or expires); the API never echoes either', async (ctx) => {
  ctx.svc = await startServiceProcess(env(ctx.s), 'tools: []\n')
  const svc = ctx.svc
  assert.is((await admin(svc, 'PUT', '/admin/tools/gh', { provider: 'github', secret: 'inbound-old-secret' })).status, 201)
  assert.is(await githubPost(svc, 'gh', 'inbound-old-secret'), 202)
  assert.is(await githubPost(svc, 'gh', 'inbound-new-secret'), 401)
  const rotated = await admin(svc, 'POST', '/admin/tools/gh/secret/rotate', { secret: 'inbound-new-secret', previous_expires_in: '1h' })
  assert.is(rotated.status, 200, rotated.text)
  assert.is(rotated.json.tool.previous_secret, '********')
  assertNoLeak('the rotate response', rotated.text)
  assert.equal([await githubPost(svc, 'gh', 'inbound-new-secret'), await githubPost(svc, 'gh', 'inbound-old-secret'), await githubPost(svc, 'gh', 'wrong')], [202, 202, 401])
  const retired = await admin(svc, 'POST', '/admin/tools/gh/secret/retire')
  assert.is(retired.status, 200)
  assert.is(retired.json.tool.previous_secret, undefined)
  assert.equal([await githubPost(svc, 'gh', 'inbound-new-secret'), await githubPost(svc, 'gh', 'inbound-old-secret')], [202, 401])
  // an expiry ends the previous secret by itself; 3 s leave the request right after the rotation seconds of
  // slack on a busy machine, and the end of it is waited for, not slept through
  const rotatedAt = Date.now()
  assert.is((await admin(svc, 'POST', '/admin/tools/gh/secret/rotate', { secret: 'inbound-old-secret', previous_expires_in: '3s' })).status, 200)
  assert.is(await githubPost(svc, 'gh', 'inbound-new-secret'), 202)
  await eventually('the previous secret expired', async () => (await githubPost(svc, 'gh', 'inbound-new-secret')) === 401, 20_000)
  assert.ok(Date.now() - rotatedAt >= 2990, `the previous secret stopped verifying ${Date.now() - rotatedAt} ms after a 3 s expiry`)
  assert.is(await githubPost(svc, 'gh', 'inbound-old-secret'), 202)
  assert.is((await admin(svc, 'POST', '/admin/tools/nope/secret/rotate', { secret: 'x' })).status, 404)
  assert.is((await admin(svc, 'POST', '/admin/tools/gh/secret/rotate', {})).json.error.code, 'TOOL_INVALID')
  const audit = await ctx.s.db.db.selectFrom('webhook_audit_log').select(['action', 'details']).execute()
  assert.equal(audit.map((a) => a.action).filter((a) => a.startsWith('tool_secret')), ['tool_secret_rotated', 'tool_secret_retired', 'tool_secret_rotated'])
  assertNoLeak('the audit rows', JSON.stringify(audit))
  assertNoLeak('the service log', svc.output())
})

Trust('outbound rotation: during it forwards carry both signatures and a receiver holding either key verifies (standardwebhooks); after retire only the new one', async (ctx) => {
  const dest = await receiver(() => 200)
  ctx.svc = await startServiceProcess(env(ctx.s), 'tools: []\n')
  const svc = ctx.svc
  try {
    const created = await admin(svc, 'PUT', '/admin/tools/fw', { provider: 'github', secret: 'inbound-old-secret', processing_mode: 'store_and_forward',
      forward_url: `http://127.0.0.1:${dest.port}/hook` })
    const oldKey: string = created.json.forward_secret
    const rotated = await admin(svc, 'POST', '/admin/tools/fw/forward-secret/rotate', {})
    assert.is(rotated.status, 200, rotated.text)
    const newKey: string = rotated.json.forward_secret
    assert.match(newKey, /^whsec_/)
    assert.is.not(newKey, oldKey)
    assert.is(await githubPost(svc, 'fw', 'inbound-old-secret'), 202)
    await eventually('forwarded', () => dest.seen.length >= 1, 15_000)
    const during = dest.seen[0]!
    assert.is(String(during.headers['webhook-signature']).split(' ').length, 2)
    for (const key of [oldKey, newKey]) new Webhook(key).verify(during.body, during.headers as Record<string, string>)
    // a given secret is not echoed
    const given = await admin(svc, 'POST', '/admin/tools/fw/forward-secret/rotate', { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' })
    assert.is(given.json.forward_secret, undefined)
    assert.not.match(given.text, /MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/)
    assert.is((await admin(svc, 'POST', '/admin/tools/fw/forward-secret/retire')).status, 200)
    assert.is(await githubPost(svc, 'fw', 'inbound-old-secret'), 202)
    await eventually('forwarded again', () => dest.seen.length >= 2, 15_000)
    const after = dest.seen[1]!
    assert.is(String(after.headers['webhook-signature']).split(' ').length, 1)
    new Webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw').verify(after.body, after.headers as Record<string, string>)
    assert.throws(() => new Webhook(newKey).verify(after.body, after.headers as Record<string, string>))
  } finally {
    await dest.close()
  }
})

Trust('every destination, not only forward_url\'s "default": refused by the egress policy, signed with its own secret, its URL and headers masked in API bodies, audit, DLQ and delivery rows and logs', async (ctx) => {
  const ok = await receiver(() => 200)
  const gone = await receiver(() => 404)
  // loopback, but outside FORWARD_ALLOW_PRIVATE (127.0.0.1/32): the policy must refuse it before a socket opens
  const refused = await receiver(() => 200, '127.0.0.2')
  ctx.svc = await startServiceProcess(env(ctx.s), 'tools: []\n')
  const svc = ctx.svc
  try {
    assert.is((await admin(svc, 'PUT', '/admin/tools/multi', { provider: 'github', secret: 'inbound-old-secret' })).status, 201)
    const add = async (id: string, url: string) => {
      const res = await admin(svc, 'POST', '/admin/tools/multi/destinations', { id, url, headers: { 'X-Dest-Key': 'hdr-leak' } })
      assert.is(res.status, 201, res.text)
      assert.is(res.json.destination.url, url.replace('pw-leak', '****').replace('tok-leak', '****'))
      assertNoLeak(`POST destination ${id} (apart from the secret shown once)`, JSON.stringify(res.json.destination))
      return res.json.secret as string
    }
    const okKey = await add('ok', `http://bot:pw-leak@127.0.0.1:${ok.port}/in?token=tok-leak`)
    const goneKey = await add('gone', `http://bot:pw-leak@127.0.0.1:${gone.port}/gone?token=tok-leak`)
    await add('refused', `http://127.0.0.2:${refused.port}/in?token=tok-leak`)
    assert.is(new Set([okKey, goneKey]).size, 2, 'each destination gets a secret of its own')
    assertNoLeak('GET /admin/tools/multi/destinations', (await admin(svc, 'GET', '/admin/tools/multi/destinations')).text)
    assertNoLeak('GET /admin/tools/multi', (await admin(svc, 'GET', '/admin/tools/multi')).text)

    assert.is(await githubPost(svc, 'multi', 'inbound-old-secret', { authorization: 'Bearer tok-leak', 'x-api-key': 'apikey-leak' }), 202)
    // one DLQ row per event (the failed pairs share it); the fan-out state says which destination failed how
    const states = async () => (await ctx.s.db.db.selectFrom('webhook_events').select(['deliveries']).execute())[0]?.deliveries as
      Record<string, { state: string; error_code?: string }> | undefined
    await eventually('delivered to "ok", failed for "gone" and "refused"', async () => {
      const d = await states()
      return ok.seen.length >= 1 && d?.gone?.state === 'failed' && d?.refused?.state === 'failed' && (await ctx.s.rows('webhook_dlq')) === 1
    }, 15_000)
    const d = (await states())!
    assert.equal(Object.entries(d).map(([id, x]) => [id, x.state, x.error_code]).sort(),
      [['gone', 'failed', 'DESTINATION_4XX'], ['ok', 'delivered', undefined], ['refused', 'failed', 'FORWARD_URL_FORBIDDEN']])
    const got = ok.seen[0]!
    assert.is(got.url, '/in?token=tok-leak')
    assert.is(got.headers.authorization, `Basic ${Buffer.from('bot:pw-leak').toString('base64')}`)
    assert.is(got.headers['x-dest-key'], 'hdr-leak')
    new Webhook(okKey).verify(got.body, got.headers as Record<string, string>)
    assert.throws(() => new Webhook(goneKey).verify(got.body, got.headers as Record<string, string>), 'not signed with another destination\'s secret')
    assertNoLeak('the delivered event', got.body)
    assert.is(refused.seen.length, 0, 'the refused destination got nothing')

    const dlq = await ctx.s.db.db.selectFrom('webhook_dlq').select(['error_code', 'error', 'event']).execute()
    assert.is(dlq.length, 1)
    if (dlq[0]!.error_code === 'DESTINATION_4XX') assert.match(dlq[0]!.error, /HTTP 404 from http:\/\/bot:\*\*\*\*@127\.0\.0\.1:\d+\/gone\?token=\*\*\*\*;/)
    else assert.match(dlq[0]!.error, /127\.0\.0\.2, in the loopback range 127\.0\.0\.0\/8/)
    assertNoLeak('the DLQ rows', JSON.stringify(dlq))
    const attempts = () => ctx.s.db.db.selectFrom('webhook_deliveries').selectAll().execute()
    await eventually('attempts logged', async () => (await attempts()).length >= 3, 15_000)
    assert.equal((await attempts()).map((r) => [r.destination_id, r.error_code]).sort(),
      [['gone', 'DESTINATION_4XX'], ['ok', null], ['refused', 'FORWARD_URL_FORBIDDEN']])
    assertNoLeak('the delivery attempt rows', JSON.stringify(await attempts()))
    const audit = await ctx.s.db.db.selectFrom('webhook_audit_log').select(['action', 'details']).execute()
    assert.equal(audit.filter((a) => a.action === 'destination_added').length, 3)
    assertNoLeak('the audit rows', JSON.stringify(audit))
    assertNoLeak('the webhook_tools row (destinations encrypted at rest)', JSON.stringify(await ctx.s.db.db.selectFrom('webhook_tools').selectAll().execute()))
    assertNoLeak('the service log', svc.output())
  } finally {
    await Promise.all([ok.close(), gone.close(), refused.close()])
  }
})

Trust('a config-file tool signs its forwards with its own forward_secret: the receiver verifies with it (standardwebhooks) and not with the inbound secret', async (ctx) => {
  const dest = await receiver(() => 200)
  const key = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
  ctx.svc = await startServiceProcess({ ...env(ctx.s), YAML_FORWARD_SECRET: key }, `tools:
  - { id: yaml-signed, provider: github, secret: inbound-new-secret, processing_mode: store_and_forward,
      forward_url: "http://127.0.0.1:${dest.port}/hook", forward_secret: "\${YAML_FORWARD_SECRET}" }
`)
  try {
    assert.is(await githubPost(ctx.svc, 'yaml-signed', 'inbound-new-secret'), 202)
    await eventually('forwarded', () => dest.seen.length >= 1, 15_000)
    const got = dest.seen[0]!
    assert.is(String(got.headers['webhook-signature']).split(' ').length, 1)
    new Webhook(key).verify(got.body, got.headers as Record<string, string>)
    // the inbound secret's bytes as a Standard Webhooks key: what a forward signed with it would verify with
    assert.throws(() => new Webhook(Buffer.from('inbound-new-secret').toString('base64')).verify(got.body, got.headers as Record<string, string>))
    assert.not.match(ctx.svc.output(), /signs its forwards/)
    assertNoLeak('the service log', ctx.svc.output())
  } finally {
    await dest.close()
  }
})

Trust('a stored tool saved without a forward secret (older versions) keeps forwarding, signed with its inbound secret, and is named in one warning when the tool list loads, without the secret', async (ctx) => {
  const dest = await receiver(() => 200)
  // written straight to the store, as a version that generated no forward secret did
  await new ToolStore({ db: ctx.s.db.db }).upsert(parseTool({ id: 'old-fw', provider: 'github', secret: 'inbound-old-secret', processing_mode: 'store_and_forward',
    forward_url: `http://127.0.0.1:${dest.port}/hook` }), 'test')
  ctx.svc = await startServiceProcess(env(ctx.s), 'tools: []\n')
  try {
    const warnings = () => ctx.svc!.output().split('\n').filter((l) => l.includes('signs its forwards')).map((l) => JSON.parse(l))
    // the tool list loads with the first request
    assert.is(await githubPost(ctx.svc, 'old-fw', 'inbound-old-secret'), 202)
    await eventually('forwarded', () => dest.seen.length >= 1, 15_000)
    await eventually('the warning', () => warnings().length > 0, 10_000)
    const got = dest.seen[0]!
    new Webhook(Buffer.from('inbound-old-secret').toString('base64')).verify(got.body, got.headers as Record<string, string>)
    // the registry reloads every 2 s: the warning is not repeated on each refresh
    await new Promise((r) => setTimeout(r, 4_500))
    assert.equal(warnings().map((w) => [w.level, w.tool_id, w.destinations]), [[40, 'old-fw', ['default']]])
    assert.match(warnings()[0].msg, /tools rotate-secret old-fw --forward/)
    assertNoLeak('the service log', ctx.svc.output())
  } finally {
    await dest.close()
  }
})

Trust.run()
