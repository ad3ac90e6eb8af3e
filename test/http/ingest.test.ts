import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { PipelineError } from '../../src/core/errors.js'
import { parseTool } from '../../src/core/tool.js'
import { createIngestHandler } from '../../src/http/ingest.js'
import { deliverySeen, streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { sharedRedis, startRedis } from '../helpers/servers.js'
import { startIngest, type IngestHarness } from './providers/ingest-harness.js'

const Ingest = suite<{ h?: IngestHarness }>('ingest', {})
Ingest.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url, { maxBodyBytes: 4096, redisTimeoutMs: 300 })
  ctx.h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
  ctx.h.addTool({ id: 'gl', provider: 'gitlab', secret: 'gl-token' })
  ctx.h.addTool({ id: 'off', provider: 'github', secret: 'gh-secret', enabled: false })
})
Ingest.after(async (ctx) => { await ctx.h?.close() })

const push = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
const sig = (body: string | Buffer) => `sha256=${createHmac('sha256', 'gh-secret').update(body).digest('hex')}`
const gh = (body: string | Buffer, extra: Record<string, string> = {}) => ({
  'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sig(body), ...extra,
})

Ingest('unknown, disabled and malformed tool ids are 404 UNKNOWN_TOOL and queue nothing', async ({ h }) => {
  const before = await h!.length()
  for (const id of ['nope', 'off', '%E0%A4%A']) {
    const res = await fetch(`${h!.url}/webhooks/${id}`, { method: 'POST', body: push, headers: gh(push) })
    assert.is(res.status, 404)
    // a tool id that is not valid percent-encoding never reaches ingest: the router answers NOT_FOUND
    assert.is(((await res.json()) as any).error.code, id.startsWith('%') ? 'NOT_FOUND' : 'UNKNOWN_TOOL')
  }
  assert.is(await h!.length(), before)
})

Ingest('a content type the provider does not send is 415 and queues nothing', async ({ h }) => {
  const before = await h!.length()
  for (const [tool, type] of [['gh', 'text/plain'], ['gh', ''], ['gl', 'application/x-www-form-urlencoded']]) {
    const res = await h!.post(tool!, push, { ...gh(push), 'content-type': type!, 'x-gitlab-token': 'gl-token', 'x-gitlab-event': 'Push Hook' })
    assert.is(res.status, 415)
    assert.is(res.json.error.code, 'UNSUPPORTED_MEDIA_TYPE')
  }
  // a sender's 8 KB media type is quoted in the answer by its first 100 characters only
  const long = `text/${'x'.repeat(8000)}`
  const res = await h!.post('gh', push, { ...gh(push), 'content-type': long })
  assert.is(res.status, 415)
  assert.match(res.json.error.message, /must be application\/json or application\/x-www-form-urlencoded for provider "github"; got "text\/x{95}"$/)
  assert.is(await h!.length(), before)
})

Ingest('a body over maxBodyBytes is 413, by Content-Length or while streaming, and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const big = Buffer.alloc(64 * 1024, 'a')
  const declared = await h!.post('gh', big, gh(big))
  assert.is(declared.status, 413)
  assert.is(declared.json.error.code, 'PAYLOAD_TOO_LARGE')
  const chunks = [Buffer.alloc(3000, 'a'), Buffer.alloc(3000, 'b')]
  const streamed = await fetch(`${h!.url}/webhooks/gh`, {
    method: 'POST', headers: gh('x'), duplex: 'half',
    body: new ReadableStream({ pull(c) { const next = chunks.shift(); if (next) c.enqueue(next); else c.close() } }),
  } as RequestInit)
  assert.is(streamed.status, 413)
  assert.is(await h!.length(), before)
})

Ingest('a signed body that is not JSON, or a form without payload, is 400 INVALID_PAYLOAD and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const bad = '{"ref": '
  const res = await h!.post('gh', bad, gh(bad))
  assert.is(res.status, 400)
  assert.is(res.json.error.code, 'INVALID_PAYLOAD')
  assert.match(res.json.error.message, /not valid JSON/)
  const form = 'other=1'
  const res2 = await h!.post('gh', form, gh(form, { 'content-type': 'application/x-www-form-urlencoded' }))
  assert.is(res2.status, 400)
  assert.match(res2.json.error.message, /"payload" field/)
  assert.is(await h!.length(), before)
})

Ingest('a bad event name or delivery id is 400 INVALID_EVENT_TYPE / INVALID_DELIVERY_ID and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const res = await h!.post('gh', push, gh(push, { 'x-github-event': 'push event' }))
  assert.is(res.status, 400)
  assert.is(res.json.error.code, 'INVALID_EVENT_TYPE')
  for (const id of ['has space', 'x'.repeat(201)]) {
    const bad = await h!.post('gh', push, gh(push, { 'x-github-delivery': id }))
    assert.is(bad.status, 400)
    assert.is(bad.json.error.code, 'INVALID_DELIVERY_ID')
  }
  assert.is(await h!.length(), before)
})

Ingest('a re-sent delivery id is answered 202 duplicate and queued once', async ({ h }) => {
  const before = await h!.length()
  const hdrs = gh(push)
  const first = await h!.post('gh', push, hdrs)
  const again = await h!.post('gh', push, hdrs)
  assert.is(first.status, 202)
  assert.is(again.status, 202)
  assert.equal(again.json, { id: hdrs['x-github-delivery'], duplicate: true })
  assert.is(await h!.length(), before + 1)
  // remembered in its shard's hash of this quarter-window, which lives while a lookup may read it
  const seen = deliverySeen(h!.keys, 'gh', hdrs['x-github-delivery']!, 86_400)
  assert.is(await h!.redis.call('HEXISTS', seen.buckets[0], seen.field), 1)
  const ttl = Number(await h!.redis.call('TTL', seen.buckets[0]))
  assert.ok(ttl > 86_000 && ttl <= 1.25 * 86_400, `ttl ${ttl}`)
})

Ingest('the stored payload is the body as received (digits, spacing), from JSON, form and invalid UTF-8 bodies', async ({ h }) => {
  const text = '{ "n": 12345678901234567890, "repository": {"full_name": "octo/repo"} }'
  const form = `payload=${encodeURIComponent(text)}`
  // a stray 0xff byte inside a string: JSON.parse reads it as U+FFFD, and so does every reader of the entry
  const badUtf8 = Buffer.concat([Buffer.from('{"s":"a'), Buffer.from([0xff]), Buffer.from('b"}')])
  for (const [body, type, expected] of [
    [text, 'application/json', text], [form, 'application/x-www-form-urlencoded', text], [badUtf8, 'application/json', '{"s":"a\ufffdb"}'],
  ] as const) {
    const res = await h!.post('gh', body, gh(body, { 'content-type': type }))
    assert.is(res.status, 202)
    const { event, fields } = (await h!.entries()).at(-1)!
    assert.is(event.id, res.json.id)
    assert.is(fields.payload, expected, 'the payload field holds the text as received')
    assert.is(fields.event, undefined)
  }
})

Ingest('secret headers are dropped from metadata, an invalid traceparent is not stored, observe sees each outcome', async ({ h }) => {
  h!.observed.length = 0
  const hdrs = gh(push, { authorization: 'Bearer t0ken', cookie: 'sid=1', traceparent: 'not-a-traceparent', 'x-custom': 'kept' })
  const res = await h!.post('gh', push, hdrs)
  await h!.post('nope', push, hdrs)
  assert.is(res.status, 202)
  const { event, fields } = (await h!.entries()).at(-1)!
  const kept = (event.metadata as { headers: Record<string, string> }).headers
  assert.is(kept.authorization, undefined)
  assert.is(kept.cookie, undefined)
  assert.is(kept['x-custom'], 'kept')
  assert.is(fields.traceparent, undefined)
  assert.equal(h!.observed.map((o) => [o.toolId, o.status, o.code, o.eventId]),
    [['gh', 202, 'ACCEPTED', hdrs['x-github-delivery']], [undefined, 404, 'UNKNOWN_TOOL', undefined]])
})

Ingest('a configured scrub list (INGEST_SCRUB_HEADERS) replaces the default one; authorization, cookies and the provider\'s signature are dropped all the same', async () => {
  const h = await startIngest((await sharedRedis()).url, { scrubHeaders: ['x-internal-*', '*-pass'] })
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    const res = await h.post('gh', push, gh(push, { 'x-internal-id': 'i-1', 'db-pass': 'p-1', 'x-api-key': 'k-1', authorization: 'Bearer t', cookie: 'sid=1', 'x-custom': 'kept' }))
    assert.is(res.status, 202)
    const kept = ((await h.entries()).at(-1)!.event.metadata as { headers: Record<string, string> }).headers
    assert.equal(['x-internal-id', 'db-pass', 'authorization', 'cookie', 'x-hub-signature-256'].filter((name) => name in kept), [])
    assert.equal([kept['x-api-key'], kept['x-custom']], ['k-1', 'kept'], 'the default list (x-api-key) no longer applies')
  } finally {
    await h.close()
  }
})

Ingest('when XADD fails the answer is 503 and the delivery id is forgotten, so the retry is queued', async ({ h }) => {
  const hdrs = gh(push)
  await h!.redis.set(h!.keys.stream, 'not a stream')
  const failed = await h!.post('gh', push, hdrs)
  assert.is(failed.status, 503)
  assert.is(failed.headers.get('retry-after'), '5')
  assert.is(failed.json.error.code, 'REDIS_UNAVAILABLE')
  const seen = deliverySeen(h!.keys, 'gh', hdrs['x-github-delivery']!, 86_400)
  assert.is(await h!.redis.call('HEXISTS', seen.buckets[0], seen.field), 0)
  await h!.redis.del(h!.keys.stream)
  const retried = await h!.post('gh', push, hdrs)
  assert.is(retried.status, 202)
  assert.is(retried.json.duplicate, undefined)
  assert.is(await h!.length(), 1)
})

Ingest('a Redis that stalls past redisTimeoutMs gets 503 quickly, and the late write never turns the retry into a duplicate', async ({ h }) => {
  const admin = new Redis((await sharedRedis()).url)
  try {
    const before = await h!.length()
    const hdrs = gh(push)
    await admin.call('CLIENT', 'PAUSE', 1200, 'WRITE')
    const started = Date.now()
    const res = await h!.post('gh', push, hdrs)
    assert.is(res.status, 503)
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`)
    await new Promise((r) => setTimeout(r, 1400))
    const retried = await h!.post('gh', push, hdrs)
    assert.is(retried.status, 202)
    assert.is(retried.json.duplicate, undefined)
    // the stalled script may still have appended the event: a second entry of the same event id, which the
    // worker's dedupe stores once; what must never happen is the retry being refused as a duplicate
    const entries = (await h!.redis.xrange(h!.keys.stream, '-', '+')).slice(before)
    assert.ok(entries.length >= 1 && entries.length <= 2, `${entries.length} entries`)
    assert.equal(new Set(entries.map(([, f]) => f[f.indexOf('id') + 1])), new Set([hdrs['x-github-delivery']]))
  } finally {
    await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined)
    admin.disconnect()
  }
})

Ingest('the late-write cleanup goes over the connection that wrote, also when the handler was given another Redis client', async () => {
  // `redis` on another database: a cleanup sent there would leave the stalled script's field in place
  const url = (await sharedRedis()).url
  const other = new Redis(`${url}/1`, { maxRetriesPerRequest: 1 })
  const h = await startIngest(url, { redisTimeoutMs: 300, redis: other })
  const admin = new Redis(url)
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    // one request first, so the quarter-window levels are known and the pause stalls the delivery's own script
    assert.is((await h.post('gh', push, gh(push))).status, 202)
    const hdrs = gh(push)
    await admin.call('CLIENT', 'PAUSE', 1000, 'WRITE')
    assert.is((await h.post('gh', push, hdrs)).status, 503)
    // the pause ends; the stalled script runs, then the cleanup queued behind it on the same connection
    await admin.call('CLIENT', 'UNPAUSE')
    await h.redis.ping()
    assert.is(await h.length(), 2, 'the stalled script queued the event when the pause ended')
    const retried = await h.post('gh', push, hdrs)
    assert.is(retried.status, 202)
    assert.is(retried.json.duplicate, undefined, 'the retry of a 503 is not refused as a duplicate')
  } finally {
    await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined)
    admin.disconnect()
    other.disconnect()
    await h.close()
  }
})

Ingest('a tool lookup that fails for infrastructure is 503 TOOLS_UNAVAILABLE with Retry-After', async () => {
  const redis = new Redis((await sharedRedis()).url)
  const keys = streamKeys({ prefix: `test-${randomUUID()}:` })
  const handler = createIngestHandler({
    tools: { get: async () => { throw new PipelineError('infrastructure', 'DB_DOWN', 'database unreachable') } },
    stream: new StreamClient({ redis, stream: keys.stream }), redis, keys, retryAfterSeconds: 7,
  })
  // used directly as a node:http listener: the tool id comes from the URL
  const server = createServer((req, res) => void handler(req, res))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/gh`, { method: 'POST', body: push, headers: gh(push) })
    assert.is(res.status, 503)
    assert.is(res.headers.get('retry-after'), '7')
    assert.is(((await res.json()) as any).error.code, 'TOOLS_UNAVAILABLE')
  } finally {
    server.close()
    redis.disconnect()
  }
})

Ingest('options are validated when the handler is built, naming the option', () => {
  const redis = new Redis({ lazyConnect: true })
  try {
    createIngestHandler({ tools: { get: async () => undefined }, stream: new StreamClient({ redis, stream: 's' }), redis, keys: streamKeys(), maxBodyBytes: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"maxBodyBytes" must be an integer of at least 1; got 0/)
  } finally {
    redis.disconnect()
  }
})

const Down = suite('ingest with Redis down')

Down('answers 503 with Retry-After within a bounded time, and accepts again once Redis is back', async () => {
  const server = await startRedis()
  const h = await startIngest(server.url, { redisTimeoutMs: 500 })
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    assert.is((await h.post('gh', push, gh(push))).status, 202)
    await server.stop()
    for (let i = 0; i < 3; i++) {
      const started = Date.now()
      const res = await h.post('gh', push, gh(push))
      assert.is(res.status, 503)
      assert.is(res.headers.get('retry-after'), '5')
      assert.is(res.json.error.code, 'REDIS_UNAVAILABLE')
      assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`)
    }
    await server.start()
    let status = 0
    for (let i = 0; i < 50 && status !== 202; i++) {
      status = (await h.post('gh', push, gh(push))).status
      if (status !== 202) await new Promise((r) => setTimeout(r, 100))
    }
    assert.is(status, 202)
  } finally {
    await h.close()
    await server.stop()
  }
})

Ingest('a tool over its rate limit gets 429 RATE_LIMITED with Retry-After and nothing is queued; unsigned requests use no quota', async () => {
  const h = await startIngest((await sharedRedis()).url, { rateLimit: { ratePerSecond: 1, burst: 2 } })
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    const bad = await h.post('gh', push, { ...gh(push), 'x-hub-signature-256': 'sha256=00' })
    assert.is(bad.status, 401)
    const answers = []
    for (let i = 0; i < 3; i++) answers.push(await h.post('gh', push, gh(push)))
    assert.equal(answers.map((a) => a.status), [202, 202, 429])
    assert.is(answers[2]!.json.error.code, 'RATE_LIMITED')
    assert.is(answers[2]!.headers.get('retry-after'), '1')
    assert.is(await h.length(), 2)
  } finally {
    await h.close()
  }
})

Ingest.run()
Down.run()
