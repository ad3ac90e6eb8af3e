import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { gitlabEventName } from '../../../src/http/providers/gitlab.js'
import { sharedRedis } from '../../helpers/servers.js'
import { startIngest, type IngestHarness } from './ingest-harness.js'

const GitLab = suite<{ h?: IngestHarness }>('provider gitlab', {})
GitLab.before(async (ctx) => {
  ctx.h = await startIngest((await sharedRedis()).url)
  ctx.h.addTool({ id: 'gl', provider: 'gitlab', secret: 'gl-token' })
})
GitLab.after(async (ctx) => { await ctx.h?.close() })

const body = JSON.stringify({ object_kind: 'push', project: { path_with_namespace: 'group/sub/project' } })
const headers = (extra: Record<string, string> = {}) => ({
  'content-type': 'application/json', 'x-gitlab-event': 'Push Hook', 'x-gitlab-event-uuid': randomUUID(), 'x-gitlab-token': 'gl-token', ...extra,
})

GitLab('event names are lowercased with runs of other characters turned into one underscore', () => {
  assert.is(gitlabEventName('Push Hook'), 'push_hook')
  assert.is(gitlabEventName('Merge Request Hook'), 'merge_request_hook')
  assert.is(gitlabEventName('System Hook'), 'system_hook')
})

GitLab('a request with the right token is queued as push_hook with the project path and no token header', async ({ h }) => {
  const before = await h!.length()
  const hdrs = headers()
  const res = await h!.post('gl', body, hdrs)
  assert.is(res.status, 202)
  assert.is(await h!.length(), before + 1)
  const { event } = (await h!.entries()).at(-1)!
  assert.is(event.id, hdrs['x-gitlab-event-uuid'])
  assert.is(event.event_type, 'webhook.gitlab.push_hook')
  assert.is(event.repository, 'group/sub/project')
  assert.is(event.tenant_id, 'default')
  assert.is((event.metadata as { headers: Record<string, string> }).headers['x-gitlab-token'], undefined)
})

GitLab('webhooks sharing one X-Gitlab-Event-UUID (fired by an earlier webhook) are each queued; a re-send with its Idempotency-Key is a duplicate', async ({ h }) => {
  const before = await h!.length()
  // GitLab gives every webhook a request to it fires the same X-Gitlab-Event-UUID (a bot answering a push with an
  // API call that fires a Note Hook); X-Gitlab-Webhook-UUID (16.2+) and Idempotency-Key (17.4+) are the webhook's own
  const shared = randomUUID()
  const push = { 'x-gitlab-event-uuid': shared, 'x-gitlab-webhook-uuid': randomUUID(), 'idempotency-key': randomUUID() }
  const note = { 'x-gitlab-event': 'Note Hook', 'x-gitlab-event-uuid': shared, 'x-gitlab-webhook-uuid': randomUUID(), 'idempotency-key': randomUUID() }
  const olderNote = { 'x-gitlab-event': 'Note Hook', 'x-gitlab-event-uuid': shared, 'x-gitlab-webhook-uuid': randomUUID() }
  for (const extra of [push, note, olderNote]) {
    const res = await h!.post('gl', body, headers(extra))
    assert.is(res.status, 202)
    assert.is(res.json.duplicate, undefined, JSON.stringify(extra))
  }
  assert.is(await h!.length(), before + 3)
  const ids = (await h!.entries()).slice(-3).map((e) => e.event.id)
  assert.equal(ids, [push['idempotency-key'], note['idempotency-key'], olderNote['x-gitlab-webhook-uuid']])
  // GitLab re-sends a webhook with its Idempotency-Key (the other ids may be new)
  const resent = await h!.post('gl', body, headers({ 'idempotency-key': push['idempotency-key'], 'x-gitlab-webhook-uuid': randomUUID() }))
  assert.is(resent.status, 202)
  assert.is(resent.json.duplicate, true)
  assert.is(await h!.length(), before + 3)
})

GitLab('a wrong, longer, shorter or missing token is 401 and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const { 'x-gitlab-token': _, ...missing } = headers()
  for (const hdrs of [headers({ 'x-gitlab-token': 'gl-tokex' }), headers({ 'x-gitlab-token': 'gl-token-longer' }),
    headers({ 'x-gitlab-token': 'gl' }), missing]) {
    const res = await h!.post('gl', body, hdrs)
    assert.is(res.status, 401)
    assert.is(res.json.error.code, 'SIGNATURE_INVALID')
  }
  assert.is(await h!.length(), before)
})

GitLab('a request without X-Gitlab-Event is 400 and queues nothing', async ({ h }) => {
  const before = await h!.length()
  const { 'x-gitlab-event': _, ...rest } = headers()
  const res = await h!.post('gl', body, rest)
  assert.is(res.status, 400)
  assert.is(res.json.error.code, 'MISSING_HEADER')
  assert.is(await h!.length(), before)
})

GitLab.run()
