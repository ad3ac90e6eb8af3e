import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { parseTool } from '../../../src/core/tool.js'
import { standardSigningKey } from '../../../src/http/providers/standard.js'
import { sharedRedis } from '../../helpers/servers.js'
import { startIngest, type IngestHarness } from './ingest-harness.js'

const keyBytes = randomBytes(24)
const secret = `whsec_${keyBytes.toString('base64')}`

const Standard = suite<{ h?: IngestHarness }>('provider standard', {})
Standard.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url)
  ctx.h.addTool({ id: 'std', provider: 'standard', secret })
  ctx.h.addTool({ id: 'std-raw', provider: 'standard', secret: 'plain-secret' })
})
Standard.after(async (ctx) => { await ctx.h?.close() })

const body = JSON.stringify({ type: 'invoice.paid', data: { id: 'in_1' } })
function signed(text: string, options: { key?: Buffer; id?: string; ts?: number } = {}) {
  const id = options.id ?? `msg_${randomUUID()}`
  const ts = String(options.ts ?? Math.floor(Date.now() / 1000))
  const sig = createHmac('sha256', options.key ?? keyBytes).update(`${id}.${ts}.${text}`).digest('base64')
  return { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': `v1,${sig}` }
}

Standard('the signing key is the base64 after whsec_, or the raw secret without the prefix', () => {
  assert.equal(standardSigningKey(secret), keyBytes)
  assert.equal(standardSigningKey('plain-secret'), Buffer.from('plain-secret'))
})

Standard('a whsec_ secret with no base64 key after it is refused when the tool is configured, naming the field', () => {
  for (const empty of ['whsec_', 'whsec_===']) {
    assert.throws(() => parseTool({ id: 'std-empty', provider: 'standard', secret: empty }),
      (err: Error) => /tool "std-empty".*secret.*"whsec_" followed by no base64 key/.test(err.message) && !err.message.includes(empty.slice(6) || '\u0000'))
  }
  assert.is(parseTool({ id: 'std-ok', provider: 'standard', secret }).secret, secret)
})

Standard('a signed message is queued with webhook-id as id and the payload type as event', async ({ h }) => {
  const before = await h!.length()
  const hdrs = signed(body)
  const res = await h!.post('std', body, hdrs)
  assert.is(res.status, 202)
  assert.is(await h!.length(), before + 1)
  const { event } = (await h!.entries()).at(-1)!
  assert.is(event.id, hdrs['webhook-id'])
  assert.is(event.event_type, 'webhook.standard.invoice.paid')
  assert.is(event.repository, '')
  assert.is((event.metadata as { headers: Record<string, string> }).headers['webhook-signature'], undefined)
})

Standard('any one valid signature in the list is enough; a payload without type is "event"', async ({ h }) => {
  const text = JSON.stringify({ hello: 'world' })
  const hdrs = signed(text)
  hdrs['webhook-signature'] = `v1,${randomBytes(32).toString('base64')} ${hdrs['webhook-signature']} v2,abc`
  const res = await h!.post('std', text, hdrs)
  assert.is(res.status, 202)
  assert.is((await h!.entries()).at(-1)!.event.event_type, 'webhook.standard.event')
})

Standard('a secret without whsec_ prefix signs with its raw bytes', async ({ h }) => {
  const res = await h!.post('std-raw', body, signed(body, { key: Buffer.from('plain-secret') }))
  assert.is(res.status, 202)
})

Standard('tampered body, wrong key, missing headers, stale, future or bad timestamps are 401 and queue nothing', async ({ h }) => {
  const before = await h!.length()
  const now = Math.floor(Date.now() / 1000)
  const good = signed(body)
  const { 'webhook-timestamp': _t, ...noTimestamp } = good
  const { 'webhook-id': _i, ...noId } = good
  const cases: [string, Record<string, string>][] = [
    [body.replace('in_1', 'in_2'), good],
    [body, signed(body, { key: randomBytes(24) })],
    [body, noTimestamp],
    [body, noId],
    [body, { ...good, 'webhook-signature': '' }],
    [body, signed(body, { ts: now - 301 })],
    [body, signed(body, { ts: now + 400 })],
    [body, { ...good, 'webhook-timestamp': `${now}abc` }],
    [body, { ...good, 'webhook-id': `${good['webhook-id']}x` }],
  ]
  for (const [text, hdrs] of cases) {
    const res = await h!.post('std', text, hdrs)
    assert.is(res.status, 401, JSON.stringify(hdrs))
    assert.equal(res.json, { error: { code: 'SIGNATURE_INVALID', message: 'signature verification failed' } })
  }
  assert.is(await h!.length(), before)
})

Standard('a webhook-signature of thousands of junk entries is refused 401 as fast as one wrong signature', async ({ h }) => {
  // an unsigned request may list as many entries as 16 KB of header holds; each must not cost hashing work
  const before = await h!.length()
  const durations = async (signature: string) => {
    const ms: number[] = []
    for (let i = 0; i < 9; i++) {
      const res = await h!.post('std', body, { ...signed(body), 'webhook-signature': signature })
      assert.is(res.status, 401)
      ms.push(h!.observed.at(-1)!.durationMs)
    }
    return ms.sort((a, b) => a - b)[4] as number
  }
  const one = await durations(`v1,${randomBytes(32).toString('base64')}`)
  const junk = await durations('a '.repeat(7_500))
  assert.ok(junk < one + 4, `median ${junk.toFixed(1)} ms with 7,500 junk entries against ${one.toFixed(1)} ms with one`)
  assert.is(await h!.length(), before)
})

Standard.run()
