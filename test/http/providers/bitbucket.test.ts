import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { sharedRedis } from '../../helpers/servers.js'
import { startIngest, type IngestHarness } from './ingest-harness.js'

const Bitbucket = suite<{ h?: IngestHarness }>('provider bitbucket', {})
Bitbucket.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url)
  ctx.h.addTool({ id: 'bb', provider: 'bitbucket', secret: 'bb-secret' })
})
Bitbucket.after(async (ctx) => { await ctx.h?.close() })

const body = JSON.stringify({ push: { changes: [] }, repository: { full_name: 'team/repo' } })
const sig = (text: string, secret = 'bb-secret') => `sha256=${createHmac('sha256', secret).update(text).digest('hex')}`
const headers = (extra: Record<string, string> = {}) => ({
  'content-type': 'application/json', 'x-event-key': 'repo:push', 'x-request-uuid': randomUUID(), 'x-hub-signature': sig(body), ...extra,
})

Bitbucket('a signed repo:push is queued with the repository full name and the request UUID as id', async ({ h }) => {
  const before = await h!.length()
  const hdrs = headers()
  const res = await h!.post('bb', body, hdrs)
  assert.is(res.status, 202)
  assert.is(await h!.length(), before + 1)
  const { event } = (await h!.entries()).at(-1)!
  assert.is(event.id, hdrs['x-request-uuid'])
  assert.is(event.event_type, 'webhook.bitbucket.repo:push')
  assert.is(event.repository, 'team/repo')
  assert.is((event.metadata as { headers: Record<string, string> }).headers['x-hub-signature'], undefined)
})

Bitbucket('tampered body, wrong secret and missing signature are 401 and queue nothing', async ({ h }) => {
  const before = await h!.length()
  const { 'x-hub-signature': _, ...missing } = headers()
  for (const [text, hdrs] of [[body.replace('team', 'evil'), headers()], [body, headers({ 'x-hub-signature': sig(body, 'nope') })],
    [body, missing]] as const) {
    const res = await h!.post('bb', text, hdrs)
    assert.is(res.status, 401)
    assert.is(res.json.error.code, 'SIGNATURE_INVALID')
  }
  assert.is(await h!.length(), before)
})

Bitbucket('a signed request without X-Event-Key is 400 and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const { 'x-event-key': _, ...rest } = headers()
  const res = await h!.post('bb', body, rest)
  assert.is(res.status, 400)
  assert.is(res.json.error.code, 'MISSING_HEADER')
  assert.is(await h!.length(), before)
})

Bitbucket.run()
