import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { deliverySeen } from '../../src/sources/keys.js'
import { sharedRedis } from '../helpers/servers.js'
import { startIngest, type IngestHarness } from './providers/ingest-harness.js'

// what ingest puts on the wire, byte for byte: the 202 answers, the payload whatever the body's chunking, and
// which shapes of a `sha256=` signature header verify
const Wire = suite<{ h?: IngestHarness }>('ingest wire format', {})
Wire.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url)
  ctx.h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
})
Wire.after(async (ctx) => { await ctx.h?.close() })

const push = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' }, note: 'caf\u00e9 \u{1f600}' })
const hex = (body: string | Buffer) => createHmac('sha256', 'gh-secret').update(body).digest('hex')
const gh = (body: string | Buffer, extra: Record<string, string> = {}) => ({
  'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
  'x-hub-signature-256': `sha256=${hex(body)}`, ...extra,
})

Wire('a 202 answer is exactly {"id","stream_id"} as JSON text, and a re-send exactly {"id","duplicate":true}', async ({ h }) => {
  const headers = gh(push, { 'x-github-delivery': 'd-"quoted"\\-1' })
  for (const expected of ['stream_id', 'duplicate']) {
    const res = await fetch(`${h!.url}/webhooks/gh`, { method: 'POST', body: push, headers })
    const text = await res.text()
    assert.is(res.status, 202)
    assert.is(res.headers.get('content-type'), 'application/json; charset=utf-8')
    assert.is(Number(res.headers.get('content-length')), Buffer.byteLength(text))
    const answer = JSON.parse(text) as { id: string; stream_id?: string }
    assert.is(answer.id, 'd-"quoted"\\-1')
    assert.is(text, expected === 'stream_id'
      ? JSON.stringify({ id: answer.id, stream_id: answer.stream_id })
      : JSON.stringify({ id: answer.id, duplicate: true }))
    assert.match(text, expected === 'stream_id' ? /^\{"id":"d-\\"quoted\\"\\\\-1","stream_id":"\d+-\d+"\}$/ : /"duplicate":true\}$/)
  }
})

Wire('a body that arrives in one piece or in many small chunks is verified and stored byte for byte', async ({ h }) => {
  const body = Buffer.from(JSON.stringify({ repository: { full_name: 'octo/repo' }, blob: 'x'.repeat(3000), word: '\u00fcber' }))
  const before = await h!.length()
  for (const pieces of [1, 7]) {
    const id = randomUUID()
    const sock = connect(h!.port, '127.0.0.1')
    let received = ''
    sock.on('data', (d) => { received += d })
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
    await new Promise<void>((resolve) => sock.once('connect', resolve))
    sock.write(`POST /webhooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n` +
      `X-GitHub-Delivery: ${id}\r\nX-Hub-Signature-256: sha256=${hex(body)}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`)
    const size = Math.ceil(body.length / pieces)
    for (let at = 0; at < body.length; at += size) {
      // each piece its own write, a moment apart, so the server reads the body in several chunks
      await new Promise<void>((resolve) => sock.write(body.subarray(at, at + size), () => setTimeout(resolve, 5)))
    }
    await closed
    assert.match(received, /^HTTP\/1\.1 202 /)
    const { event, fields } = (await h!.entries()).at(-1)!
    assert.is(event.id, id)
    assert.ok(Buffer.from(fields.payload!, 'utf8').equals(body), `${pieces} piece(s): the payload field holds the body's bytes`)
  }
  assert.is(await h!.length(), before + 2)
})

Wire('a sha256= signature verifies in either letter case and is refused with anything around or missing from its 64 digits', async ({ h }) => {
  const digits = hex(push)
  const before = await h!.length()
  for (const signature of [`sha256=${digits.toUpperCase()}`, `SHA256=${digits}`, `  sha256=${digits} `]) {
    assert.is((await h!.post('gh', push, gh(push, { 'x-hub-signature-256': signature }))).status, 202, signature)
  }
  const refused = [`sha256=${digits}0`, `sha256=${digits.slice(0, 63)}`, `sha256=${digits}zz`, `sha256= ${digits}`,
    `sha256=${digits.slice(0, 62)}zz`, `sha1=${digits}`, digits, 'sha256=']
  for (const signature of refused) {
    const res = await h!.post('gh', push, gh(push, { 'x-hub-signature-256': signature }))
    assert.is(res.status, 401, signature)
    assert.equal(res.json, { error: { code: 'SIGNATURE_INVALID', message: 'signature verification failed' } })
  }
  assert.is(await h!.length(), before + 3)
})

Wire('the "delivery seen" field is the 12 raw bytes a delivery was recorded under before, so such a re-send stays a duplicate', async ({ h }) => {
  const id = randomUUID()
  const seen = deliverySeen(h!.keys, 'gh', id, 86_400)
  // as an earlier ingest recorded it: the field's bytes themselves
  await h!.redis.call('HSET', seen.buckets[0], seen.field, 'earlier')
  const before = await h!.length()
  const again = await h!.post('gh', push, gh(push, { 'x-github-delivery': id }))
  assert.is(again.status, 202)
  assert.equal(again.json, { id, duplicate: true })
  assert.is(await h!.length(), before)
  const first = randomUUID()
  const res = await h!.post('gh', push, gh(push, { 'x-github-delivery': first }))
  assert.is(res.status, 202)
  const recorded = deliverySeen(h!.keys, 'gh', first, 86_400)
  assert.is(await h!.redis.call('HEXISTS', recorded.buckets[0], recorded.field), 1)
  assert.is(await h!.redis.call('HEXISTS', recorded.buckets[0], recorded.field.toString('hex')), 0, 'never under its hex text')
})

Wire.run()
