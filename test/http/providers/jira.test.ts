import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { sharedRedis } from '../../helpers/servers.js'
import { startIngest, type IngestHarness } from './ingest-harness.js'

const Jira = suite<{ h?: IngestHarness }>('provider jira', {})
Jira.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url)
  ctx.h.addTool({ id: 'jr', provider: 'jira', secret: 'jira-secret' })
})
Jira.after(async (ctx) => { await ctx.h?.close() })

const body = JSON.stringify({ webhookEvent: 'jira:issue_created', issue: { key: 'OPS-1', fields: { project: { key: 'OPS' } } } })
const sig = (text: string, secret = 'jira-secret') => `sha256=${createHmac('sha256', secret).update(text).digest('hex')}`
const headers = (text = body, extra: Record<string, string> = {}) => ({
  'content-type': 'application/json', 'x-atlassian-webhook-identifier': randomUUID(), 'x-hub-signature': sig(text), ...extra,
})

Jira('a signed issue_created is queued with the event from webhookEvent and the project key as repository', async ({ h }) => {
  const before = await h!.length()
  const hdrs = headers()
  const res = await h!.post('jr', body, hdrs)
  assert.is(res.status, 202)
  assert.is(await h!.length(), before + 1)
  const { event } = (await h!.entries()).at(-1)!
  assert.is(event.id, hdrs['x-atlassian-webhook-identifier'])
  assert.is(event.event_type, 'webhook.jira.jira:issue_created')
  assert.is(event.repository, 'OPS')
})

Jira('without a webhook identifier the event gets a generated UUID', async ({ h }) => {
  const { 'x-atlassian-webhook-identifier': _, ...rest } = headers()
  const res = await h!.post('jr', body, rest)
  assert.is(res.status, 202)
  assert.match(res.json.id, /^[0-9a-f-]{36}$/)
})

Jira('tampered body, wrong secret and missing signature are 401 and queue nothing', async ({ h }) => {
  const before = await h!.length()
  const { 'x-hub-signature': _, ...missing } = headers()
  for (const [text, hdrs] of [[body.replace('OPS', 'EVIL'), headers()], [body, headers(body, { 'x-hub-signature': sig(body, 'nope') })],
    [body, missing]] as const) {
    const res = await h!.post('jr', text, hdrs)
    assert.is(res.status, 401)
    assert.is(res.json.error.code, 'SIGNATURE_INVALID')
  }
  assert.is(await h!.length(), before)
})

Jira('a signed body without webhookEvent is 400 INVALID_PAYLOAD and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const text = JSON.stringify({ issue: {} })
  const res = await h!.post('jr', text, headers(text))
  assert.is(res.status, 400)
  assert.is(res.json.error.code, 'INVALID_PAYLOAD')
  assert.match(res.json.error.message, /webhookEvent/)
  assert.is(await h!.length(), before)
})

Jira.run()
