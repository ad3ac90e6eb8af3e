import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { sharedRedis } from '../helpers/servers.js'
import { startIngest, type IngestHarness } from './providers/ingest-harness.js'

const Storable = suite<{ h?: IngestHarness }>('ingest: payloads PostgreSQL jsonb cannot hold', {})
Storable.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url, { maxBodyBytes: 1 << 20 })
  ctx.h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
})
Storable.after(async (ctx) => { await ctx.h?.close() })

const gh = (body: string) => ({
  'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
  'x-hub-signature-256': `sha256=${createHmac('sha256', 'gh-secret').update(body).digest('hex')}`,
})

Storable('a lone surrogate escape is 400 PAYLOAD_NOT_STORABLE naming the rule, and queues nothing', async ({ h }) => {
  const before = await h!.length()
  for (const body of ['{"zen":"lone \\ud800 surrogate"}', '{"zen":"low \\uDC00 first"}', '["\\ud800\\u0041"]']) {
    const res = await h!.post('gh', body, gh(body))
    assert.is(res.status, 400, body)
    assert.is(res.json.error.code, 'PAYLOAD_NOT_STORABLE')
    assert.match(res.json.error.message, /unpaired surrogate/)
  }
  assert.is(await h!.length(), before)
})

Storable('nesting 100,000 levels deep is 400 PAYLOAD_NOT_STORABLE naming the limit, and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const body = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
  const res = await h!.post('gh', body, gh(body))
  assert.is(res.status, 400)
  assert.is(res.json.error.code, 'PAYLOAD_NOT_STORABLE')
  assert.match(res.json.error.message, /nest.*512/)
  assert.is(await h!.length(), before)
})

Storable('a NUL escape is 400 PAYLOAD_NOT_STORABLE naming it, and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const body = '{"nul":"a\\u0000b"}'
  const res = await h!.post('gh', body, gh(body))
  assert.equal([res.status, res.json.error.code], [400, 'PAYLOAD_NOT_STORABLE'])
  assert.match(res.json.error.message, /NUL escape/)
  assert.is(await h!.length(), before)
})

Storable('a valid surrogate pair, 512 levels and look-alikes inside strings are accepted', async ({ h }) => {
  const before = await h!.length()
  // the third has more brackets than the limit, side by side: wide, not deep
  const bodies = ['{"emoji":"\\ud83d\\ude00"}', `${'['.repeat(512)}${']'.repeat(512)}`, JSON.stringify(Array.from({ length: 600 }, () => [{}])),
    '{"s":"[[[[ \\\\ud800 \\" {{{"}']
  for (const body of bodies) {
    const res = await h!.post('gh', body, gh(body))
    assert.is(res.status, 202, `${body.slice(0, 40)}: ${JSON.stringify(res.json)}`)
  }
  assert.is(await h!.length(), before + bodies.length)
})

Storable.run()
