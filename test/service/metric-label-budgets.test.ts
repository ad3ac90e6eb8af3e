import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { eventually } from '../helpers/events.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { parseExposition, sampleTotal as total } from '../observability/exposition.js'
import { openSpace, SECRET, type Space } from '../reliability/fixture.js'

// Metric label budgets on `hookstream run` itself, read from the real /metrics text: event types are budgeted per
// tool (METRICS_MAX_EVENT_TYPES_PER_TOOL, default 50), so one tool's made-up types cannot fold another's.
interface Ctx { s: Space; svc: ServiceProcess }
const Budgets = suite<Ctx>('hookstream run: metric label budgets per tool', {} as Ctx)

const github = (id: string) => `  - { id: ${id}, provider: github, secret: ${SECRET}, tenant_id: acme }\n`
const TOOLS = `tools:\n${github('gh-a')}${github('gh-b')}${github('gh-c')}${github('gh-d')}` +
  '  - { id: open, provider: generic, signature: none, tenant_id: acme }\n'

Budgets.before(withTimeLimit(120_000, async (ctx: Ctx) => {
  ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  ctx.svc = await startServiceProcess({ ...ctx.s.env, WORKER_BLOCK_TIMEOUT: '200ms' }, TOOLS)
}))
Budgets.after((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  s: (s) => s.close(),
}))

/** POSTs a GitHub delivery of `event` to `toolId`, signed with SECRET unless `signed` is false; resolves with the status. */
async function sendGithub(svc: ServiceProcess, toolId: string, event: string, signed = true): Promise<number> {
  const body = JSON.stringify({ action: 'published', repository: { full_name: 'acme/api' } })
  const signature = createHmac('sha256', signed ? SECRET : 'not-the-secret').update(body).digest('hex')
  const res = await fetch(`${svc.ingestUrl}/webhooks/${toolId}`, {
    method: 'POST', body,
    headers: { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${signature}` },
  })
  await res.arrayBuffer()
  return res.status
}

/** POSTs an unsigned request of `event` to the generic tool with `signature: none`; resolves with the status. */
async function sendUnsigned(svc: ServiceProcess, toolId: string, event: string): Promise<number> {
  const res = await fetch(`${svc.ingestUrl}/webhooks/${toolId}`, {
    method: 'POST', body: JSON.stringify({ hello: 'world' }), headers: { 'content-type': 'application/json', 'x-event-type': event },
  })
  await res.arrayBuffer()
  return res.status
}

async function scrape(svc: ServiceProcess): Promise<{ text: string; samples: Map<string, number> }> {
  const text = await (await fetch(`${svc.healthUrl}/metrics`)).text()
  return { text, samples: parseExposition(text) }
}

/** Distinct event_type values of webhook_events_received_total for one tool. */
function eventTypesOf(samples: Map<string, number>, toolId: string): string[] {
  return [...samples.keys()]
    .filter((k) => k.startsWith('webhook_events_received_total{') && k.includes(`tool_id="${toolId}"`))
    .map((k) => /event_type="([^"]*)"/.exec(k)![1]!)
}

Budgets('150 made-up event types, unsigned to one tool and through an unsigned tool, leave a real release of other tools its own label', withTimeLimit(240_000, async ({ svc }) => {
  const madeUp = Array.from({ length: 150 }, (_, i) => `made-up-${i}`)
  const rejected = []
  for (const event of madeUp) rejected.push(await sendGithub(svc, 'gh-a', event, false))
  assert.equal([...new Set(rejected)], [401], 'every unsigned request to gh-a is refused')
  const accepted = []
  for (const event of madeUp) accepted.push(await sendUnsigned(svc, 'open', event))
  assert.equal([...new Set(accepted)], [202], 'the tool with signature: none accepts every request')
  assert.is(await sendGithub(svc, 'gh-b', 'release'), 202)
  assert.is(await sendGithub(svc, 'gh-a', 'release'), 202)

  let samples = new Map<string, number>()
  await eventually('the worker received 152 events', async () => {
    samples = (await scrape(svc)).samples
    return total(samples, 'webhook_events_received_total') === 152
  }, 120_000)
  const { text } = await scrape(svc)
  assert.is(total(samples, 'webhook_events_received_total', { event_type: 'webhook.github.release', tool_id: 'gh-b' }), 1)
  assert.is(total(samples, 'webhook_events_received_total', { event_type: 'webhook.github.release', tool_id: 'gh-a' }), 1)
  assert.is(total(samples, 'webhook_events_received_total', { event_type: 'other', tool_id: 'gh-a' }), 0)
  // the refused requests made no event_type value at all: only the one real release is known for gh-a
  assert.equal(eventTypesOf(samples, 'gh-a'), ['webhook.github.release'])
  assert.not.match(text, /webhook\.github\.made-up-/, 'no metric of any family names an event type of a refused request')
  assert.is(total(samples, 'webhook_ingest_requests_total', { tool_id: 'gh-a', code: '401' }), 150)
  assert.is(total(samples, 'webhook_signature_failures_total', { tool_id: 'gh-a' }), 150)
  // the unsigned tool keeps its own budget of 50; its other 100 types are folded and counted as folded
  assert.is(eventTypesOf(samples, 'open').filter((t) => t !== 'other').length, 50)
  assert.is(total(samples, 'webhook_events_received_total', { event_type: 'other', tool_id: 'open' }), 100)
  assert.is(total(samples, 'webhook_metric_labels_folded_total', { label: 'event_type', tool_id: 'open' }), 100)
  assert.is(total(samples, 'webhook_metric_labels_folded_total', { label: 'event_type', tool_id: 'gh-a' }), 0)
  assert.is(total(samples, 'webhook_metric_labels_folded_total', { label: 'event_type', tool_id: 'gh-b' }), 0)
}))

Budgets('60 signed event types to one tool fold the 51st and later into other and count them; another tool keeps all of its types', withTimeLimit(240_000, async ({ svc }) => {
  const types = Array.from({ length: 60 }, (_, i) => `kind-${i}`)
  for (const event of types) assert.is(await sendGithub(svc, 'gh-c', event), 202)
  const other = ['push', 'release', 'issues', 'pull_request', 'workflow_run']
  for (const event of other) assert.is(await sendGithub(svc, 'gh-d', event), 202)

  let samples = new Map<string, number>()
  await eventually('the worker stored the 65 events of gh-c and gh-d', async () => {
    samples = (await scrape(svc)).samples
    return total(samples, 'webhook_events_processed_total', { tool_id: 'gh-c' }) + total(samples, 'webhook_events_processed_total', { tool_id: 'gh-d' }) === 65
  }, 120_000)
  assert.is(total(samples, 'webhook_events_received_total', { tool_id: 'gh-c' }), 60)
  const known = eventTypesOf(samples, 'gh-c').filter((t) => t !== 'other')
  assert.is(known.length, 50)
  assert.is(total(samples, 'webhook_events_received_total', { event_type: 'other', tool_id: 'gh-c' }), 10)
  assert.is(total(samples, 'webhook_metric_labels_folded_total', { label: 'event_type', tool_id: 'gh-c' }), 10)
  // the events reached an outcome under the same folded labels
  assert.is(total(samples, 'webhook_events_processed_total', { event_type: 'other', tool_id: 'gh-c', status: 'stored' }), 10)
  assert.equal(eventTypesOf(samples, 'gh-d').sort(), other.map((e) => `webhook.github.${e}`).sort())
  assert.is(total(samples, 'webhook_metric_labels_folded_total', { label: 'event_type', tool_id: 'gh-d' }), 0)
}))

Budgets.run()
