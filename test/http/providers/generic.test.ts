import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac } from 'node:crypto'
import { parseTool, toolToJSON } from '../../../src/core/tool.js'
import { sharedRedis } from '../../helpers/servers.js'
import { startIngest, type IngestHarness } from './ingest-harness.js'

const Generic = suite<{ h?: IngestHarness }>('provider generic', {})
Generic.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url)
  ctx.h.addTool({ id: 'hex', provider: 'generic', secret: 'g-secret' })
  ctx.h.addTool({ id: 'b64', provider: 'generic', secret: 'g-secret', signature: { header: 'X-Shop-Signature', encoding: 'base64', prefix: 'sha256=' } })
  ctx.h.addTool({ id: 'open', provider: 'generic', signature: 'none' })
  ctx.h.addTool({ id: 'by-header', provider: 'generic', signature: 'none', delivery_id: { header: 'X-Request-Id' } })
  ctx.h.addTool({ id: 'by-pointer', provider: 'generic', signature: 'none', delivery_id: { pointer: '/data/id' } })
})
Generic.after(async (ctx) => { await ctx.h?.close() })

const body = JSON.stringify({ type: 'order.created', id: 42 })
const mac = (text: string, secret = 'g-secret') => createHmac('sha256', secret).update(text)
const json = { 'content-type': 'application/json' }

Generic('a hex signature in x-signature (any case) is accepted; the event comes from the payload type', async ({ h }) => {
  const before = await h!.length()
  for (const sig of [mac(body).digest('hex'), mac(body).digest('hex').toUpperCase()]) {
    const res = await h!.post('hex', body, { ...json, 'x-signature': sig })
    assert.is(res.status, 202)
    assert.match(res.json.id, /^[0-9a-f-]{36}$/)
  }
  assert.is(await h!.length(), before + 2)
  const { event } = (await h!.entries()).at(-1)!
  assert.is(event.event_type, 'webhook.generic.order.created')
  assert.equal(event.auth_context, { provider: 'generic', verified: true })
  assert.is((event.metadata as { headers: Record<string, string> }).headers['x-signature'], undefined)
})

Generic('a tool that names where its delivery id is gets re-sends answered as duplicates; without it each request is new', async ({ h }) => {
  const before = await h!.length()
  const order = JSON.stringify({ type: 'order.created', data: { id: 9001 } })
  const viaHeader = [await h!.post('by-header', order, { ...json, 'x-request-id': 'req-77' }), await h!.post('by-header', order, { ...json, 'x-request-id': 'req-77' })]
  assert.equal(viaHeader.map((r) => [r.status, r.json.id, r.json.duplicate ?? false]), [[202, 'req-77', false], [202, 'req-77', true]])
  const viaPointer = [await h!.post('by-pointer', order, json), await h!.post('by-pointer', order, json)]
  assert.equal(viaPointer.map((r) => [r.status, r.json.id, r.json.duplicate ?? false]), [[202, '9001', false], [202, '9001', true]])
  const plain = [await h!.post('open', order, json), await h!.post('open', order, json)]
  assert.equal(plain.map((r) => r.json.duplicate ?? false), [false, false])
  assert.is.not(plain[0]!.json.id, plain[1]!.json.id)
  assert.is(await h!.length(), before + 4)
  const missing = await h!.post('by-pointer', body, json)
  assert.equal([missing.status, missing.json.error.code], [400, 'INVALID_DELIVERY_ID'])
  assert.match(missing.json.error.message, /JSON pointer "\/data\/id"/)
})

Generic('a numeric delivery id beyond 2^53 is taken digit for digit, so two ids that round to one double are two events', async ({ h }) => {
  const before = await h!.length()
  // 64-bit ids such as snowflakes: both of these parse to the double 1234567890123456768
  const ids = ['1234567890123456789', '1234567890123456790']
  const answers = []
  for (const id of ids) answers.push(await h!.post('by-pointer', `{"type":"order.created","data":{"id":${id}}}`, json))
  assert.equal(answers.map((r) => [r.status, r.json.id, r.json.duplicate ?? false]), ids.map((id) => [202, id, false]))
  assert.is(await h!.length(), before + 2)
  assert.equal((await h!.entries()).slice(-2).map((e) => e.event.id), ids)
})

Generic('a delivery id that is not 1–200 printable characters is 400 naming where the tool takes it from, and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const res = await h!.post('by-pointer', JSON.stringify({ type: 'order.created', data: { id: 'order 42' } }), json)
  assert.equal([res.status, res.json.error.code], [400, 'INVALID_DELIVERY_ID'])
  assert.match(res.json.error.message, /JSON pointer "\/data\/id"/)
  assert.match(res.json.error.message, /got "order 42"/)
  const viaHeader = await h!.post('by-header', body, { ...json, 'x-request-id': 'x'.repeat(201) })
  assert.equal([viaHeader.status, viaHeader.json.error.code], [400, 'INVALID_DELIVERY_ID'])
  assert.match(viaHeader.json.error.message, /header "x-request-id"/)
  assert.is(await h!.length(), before)
})

Generic('delivery_id is refused on a provider with its own delivery id, or when it is not a header or a JSON pointer', () => {
  for (const [provider, deliveryId, field] of [['github', { header: 'x-id' }, /"delivery_id" is only for provider "generic"/],
    ['generic', { pointer: 'data.id' }, /"delivery_id.pointer" must be a JSON pointer/], ['generic', { header: 'a b' }, /"delivery_id.header"/],
    ['generic', { header: 'x', pointer: '/a' }, /must be \{ header/]] as const) {
    try {
      parseTool({ id: 't', provider, secret: 's', delivery_id: deliveryId })
      assert.unreachable('accepted')
    } catch (err) {
      assert.match((err as Error).message, field)
    }
  }
  assert.equal(toolToJSON(parseTool({ id: 't', provider: 'generic', secret: 's', delivery_id: { header: 'X-Id' } })).delivery_id, { header: 'x-id' })
})

Generic('a base64 signature after the configured prefix in the configured header is accepted; X-Event-Type wins', async ({ h }) => {
  const res = await h!.post('b64', body, { ...json, 'x-shop-signature': `sha256=${mac(body).digest('base64')}`, 'x-event-type': 'shop.sync' })
  assert.is(res.status, 202)
  const { event } = (await h!.entries()).at(-1)!
  assert.is(event.event_type, 'webhook.generic.shop.sync')
  assert.is((event.metadata as { headers: Record<string, string> }).headers['x-shop-signature'], undefined)
})

Generic('signature "none" accepts unsigned requests and marks them unverified', async ({ h }) => {
  const text = JSON.stringify({ event: 'ping' })
  const res = await h!.post('open', text, json)
  assert.is(res.status, 202)
  const { event } = (await h!.entries()).at(-1)!
  assert.is(event.event_type, 'webhook.generic.ping')
  assert.equal(event.auth_context, { provider: 'generic', verified: false })
})

Generic('tampered body, wrong secret, missing header, missing prefix or wrong encoding are 401 and queue nothing', async ({ h }) => {
  const before = await h!.length()
  const cases: [string, string, Record<string, string>][] = [
    ['hex', body.replace('42', '43'), { 'x-signature': mac(body).digest('hex') }],
    ['hex', body, { 'x-signature': mac(body, 'nope').digest('hex') }],
    ['hex', body, {}],
    ['hex', body, { 'x-signature': `${mac(body).digest('hex')}00` }],
    ['b64', body, { 'x-shop-signature': mac(body).digest('base64') }],
    ['b64', body, { 'x-shop-signature': `sha256=${mac(body).digest('hex')}` }],
    ['b64', body, { 'x-signature': `sha256=${mac(body).digest('base64')}` }],
  ]
  for (const [tool, text, hdrs] of cases) {
    const res = await h!.post(tool, text, { ...json, ...hdrs })
    assert.is(res.status, 401)
    assert.is(res.json.error.code, 'SIGNATURE_INVALID')
  }
  assert.is(await h!.length(), before)
})

Generic.run()
