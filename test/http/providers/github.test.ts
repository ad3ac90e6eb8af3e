import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createRequire } from 'node:module'
import { randomUUID } from 'node:crypto'
import { sharedRedis } from '../../helpers/servers.js'
import { startIngest, type IngestHarness } from './ingest-harness.js'

interface Definition { name: string; examples: Record<string, unknown>[] }
const definitions = createRequire(import.meta.url)('@octokit/webhooks-examples') as Definition[]

const GitHub = suite<{ h?: IngestHarness }>('provider github', {})
GitHub.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url)
  ctx.h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret', tenant_id: 'acme' })
})
GitHub.after(async (ctx) => { await ctx.h?.close() })

const push = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })

// ESM-only package: uvu loads test files through require, so it is imported dynamically
const sign = async (secret: string, body: string) => (await import('@octokit/webhooks-methods')).sign(secret, body)

async function headers(body: string, extra: Record<string, string> = {}, secret = 'gh-secret'): Promise<Record<string, string>> {
  return { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
    'x-hub-signature-256': await sign(secret, body), ...extra }
}

GitHub('a signed JSON push is queued with event type, repository, delivery id and no signature header', async ({ h }) => {
  const before = await h!.length()
  const hdrs = await headers(push, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })
  const res = await h!.post('gh', push, hdrs)
  assert.is(res.status, 202)
  assert.is(res.json.id, hdrs['x-github-delivery'])
  assert.match(res.json.stream_id, /^\d+-\d+$/)
  assert.is(await h!.length(), before + 1)
  const { event, fields } = (await h!.entries()).at(-1)!
  assert.is(event.id, hdrs['x-github-delivery'])
  assert.is(event.event_type, 'webhook.github.push')
  assert.is(event.repository, 'octo/repo')
  assert.is(event.tenant_id, 'acme')
  assert.is(event.tool_id, 'gh')
  assert.equal(event.payload, JSON.parse(push))
  assert.equal(event.auth_context, { provider: 'github', verified: true })
  const kept = (event.metadata as { headers: Record<string, string> }).headers
  assert.is(kept['x-github-event'], 'push')
  assert.is(kept['x-hub-signature-256'], undefined)
  assert.is(fields.traceparent, hdrs.traceparent)
})

GitHub('a form-encoded body is verified over the raw form bytes and its payload field is queued', async ({ h }) => {
  const before = await h!.length()
  const form = `payload=${encodeURIComponent(push)}`
  const res = await h!.post('gh', form, await headers(form, { 'content-type': 'application/x-www-form-urlencoded' }))
  assert.is(res.status, 202)
  assert.is(await h!.length(), before + 1)
  assert.equal((await h!.entries()).at(-1)!.event.payload, JSON.parse(push))
})

GitHub('ping is accepted', async ({ h }) => {
  const body = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 })
  const res = await h!.post('gh', body, await headers(body, { 'x-github-event': 'ping' }))
  assert.is(res.status, 202)
  assert.is((await h!.entries()).at(-1)!.event.event_type, 'webhook.github.ping')
})

GitHub('tampered body, wrong secret, missing or malformed signature are 401 and queue nothing', async ({ h }) => {
  const before = await h!.length()
  const good = await headers(push)
  const { 'x-hub-signature-256': _, ...unsigned } = good
  const cases = [
    { body: push.replace('main', 'evil'), headers: good },
    { body: push, headers: await headers(push, {}, 'other-secret') },
    { body: push, headers: unsigned },
    { body: push, headers: { ...good, 'x-hub-signature-256': good['x-hub-signature-256']!.replace('sha256=', 'sha1=') } },
    { body: push, headers: { ...good, 'x-hub-signature-256': `${good['x-hub-signature-256']}00` } },
  ]
  for (const c of cases) {
    const res = await h!.post('gh', c.body, c.headers)
    assert.is(res.status, 401)
    assert.equal(res.json, { error: { code: 'SIGNATURE_INVALID', message: 'signature verification failed' } })
  }
  assert.is(await h!.length(), before)
})

GitHub('a signed request without X-GitHub-Event is 400 MISSING_HEADER', async ({ h }) => {
  const before = await h!.length()
  const { 'x-github-event': _, ...rest } = await headers(push)
  const res = await h!.post('gh', push, rest)
  assert.is(res.status, 400)
  assert.is(res.json.error.code, 'MISSING_HEADER')
  assert.match(res.json.error.message, /x-github-event/)
  assert.is(await h!.length(), before)
})

GitHub('every @octokit/webhooks-examples payload is accepted with its event type and repository', async ({ h }) => {
  const before = await h!.length()
  const expected: { id: string; type: string; repository: string }[] = []
  for (const def of definitions) {
    for (const example of def.examples) {
      const body = JSON.stringify(example)
      const hdrs = await headers(body, { 'x-github-event': def.name })
      const res = await h!.post('gh', body, hdrs)
      assert.is(res.status, 202, `${def.name}: ${JSON.stringify(res.json)}`)
      const repo = (example.repository as { full_name?: string } | undefined)?.full_name ?? ''
      expected.push({ id: hdrs['x-github-delivery']!, type: `webhook.github.${def.name}`, repository: repo })
    }
  }
  assert.ok(expected.length > 300)
  const entries = (await h!.entries()).slice(before)
  assert.is(entries.length, expected.length)
  assert.equal(entries.map(({ event }) => ({ id: event.id, type: event.event_type, repository: event.repository })), expected)
})

GitHub.run()
