import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import { commandDlqStream, writeDeadLetter } from '../../src/commands/command-log.js'
import { PipelineError } from '../../src/core/errors.js'
import { parseTool, PROCESSING_MODES, PROVIDERS } from '../../src/core/tool.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { adminRoutes } from '../../src/http/admin.js'
import { createRouter, startHttpServer, type Route, type RunningHttpServer } from '../../src/http/server.js'
import { EventStore } from '../../src/db/event-store.js'
import { breakerBoard } from '../../src/sinks/breaker-board.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { seedDlq } from '../db/dlq-seed.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const TOKEN = 'openapi-token-0123456789abcdef'
const DOC_FILE = new URL('../../src/http/admin-openapi.json', import.meta.url)
const doc = JSON.parse(readFileSync(DOC_FILE, 'utf8')) as {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>
}

// one compiled validator per documented (path, method, status); the document itself is the schema registry
const ajv = new Ajv2020({ strict: false, allErrors: true })
ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s))
ajv.addSchema(doc, 'admin')
const pointer = (...parts: string[]) => parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')
const validators = new Map<string, ValidateFunction | null>()
function validatorFor(template: string, method: string, status: number): ValidateFunction | null | undefined {
  const key = `${method} ${template} ${status}`
  if (!validators.has(key)) {
    const response = doc.paths[template]?.[method]?.responses[String(status)]
    if (!response) return undefined
    const media = response.content?.['application/json']
    validators.set(key, media ? ajv.compile({ $ref: `admin#/${pointer('paths', template, method, 'responses', String(status), 'content', 'application/json', 'schema')}` }) : null)
  }
  return validators.get(key)
}

const templates = Object.keys(doc.paths).map((template) => ({
  template, match: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
}))
const templateOf = (path: string) => templates.find((t) => t.match.test(path.split('?')[0] as string))?.template
const routeKey = (route: Pick<Route, 'method' | 'path'>) => `${route.method.toLowerCase()} ${route.path.replace(/:(\w+)/g, '{$1}')}`

interface Ctx { handle: Db; redis: Redis; keys: StreamKeys; registry: ToolRegistry; http: RunningHttpServer; routes: Route[]; commands: string; seen: Map<string, Set<number>> }
const Api = suite<Ctx>('admin API against its OpenAPI document', {} as Ctx)

Api.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
  ctx.redis = new Redis((await sharedRedis()).url)
  const keys = streamKeys({ prefix: `t-${randomUUID()}:` })
  ctx.keys = keys
  const store = new ToolStore({ db: ctx.handle.db, encryptionKey: 'a passphrase of sixteen+ chars' })
  ctx.registry = new ToolRegistry({ store, refreshMs: 60_000 })
  ctx.commands = `commands-${randomUUID()}`
  ctx.routes = adminRoutes({
    db: ctx.handle.db, redis: ctx.redis, keys, tools: ctx.registry, toolStore: store, token: TOKEN,
    stream: new StreamClient({ redis: ctx.redis, stream: keys.stream }),
    staticTools: [parseTool({ id: 'from-yaml', provider: 'gitlab', secret: 'yaml-secret-value' })],
    commandLog: { redis: ctx.redis, stream: ctx.commands },
    replay: { send: async (events) => events.length, limits: { maxEvents: 1000, confirmOver: 1 } },
  })
  ctx.http = await startHttpServer('127.0.0.1:0', createRouter(ctx.routes))
  ctx.seen = new Map()
})
Api.after.each((ctx) => release(ctx, { http: (h) => h.close(), registry: (r) => r.close(), handle: (h) => h.close(), redis: (r) => r.disconnect() }))

/** Calls the API and checks the answer against the document: the status is documented and the body matches. */
async function call(ctx: Ctx, method: string, path: string, expected: number, body?: unknown, token: string | null = TOKEN): Promise<any> {
  const res = await fetch(`${ctx.http.url}${path}`, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  assert.is(res.status, expected, `${method} ${path}: ${text.slice(0, 300)}`)
  const template = templateOf(path)
  assert.ok(template, `${method} ${path} is not in the OpenAPI document`)
  const validate = validatorFor(template as string, method.toLowerCase(), res.status)
  assert.ok(validate !== undefined, `${method} ${template} answered ${res.status}, which the document does not list`)
  if (validate === null) {
    assert.is(text, '', `${method} ${template} ${res.status} is documented without a body`)
  } else {
    const json = JSON.parse(text) as unknown
    assert.ok(validate(json), `${method} ${template} ${res.status}: ${ajv.errorsText(validate.errors)}\n${text.slice(0, 500)}`)
  }
  const key = `${method.toLowerCase()} ${template}`
  ctx.seen.set(key, (ctx.seen.get(key) ?? new Set()).add(res.status))
  return text ? JSON.parse(text) : undefined
}

Api('the document lists exactly the routes the admin API serves, and the API serves the document in the repo', async (ctx) => {
  const documented = Object.entries(doc.paths).flatMap(([template, methods]) => Object.keys(methods).map((m) => `${m} ${template}`))
  assert.equal(new Set(ctx.routes.map(routeKey)), new Set(documented))
  assert.is(ctx.routes.length, documented.length, 'no route is mounted twice')
  const tool = (doc as unknown as { components: { schemas: { Tool: { properties: Record<string, { enum?: string[] }> } } } }).components.schemas.Tool.properties
  assert.equal(tool.provider?.enum, [...PROVIDERS])
  assert.equal(tool.processing_mode?.enum, [...PROCESSING_MODES])
  assert.equal(await call(ctx, 'GET', '/admin/openapi.json', 200), doc)
  await call(ctx, 'GET', '/admin/openapi.json', 401, undefined, null)
})

Api('every route answers what the document says, on success and on error', async (ctx) => {
  // tools
  await call(ctx, 'GET', '/admin/tools', 401, undefined, 'wrong-token-wrong-token')
  const created = await call(ctx, 'PUT', '/admin/tools/gh', 201, {
    provider: 'github', secret: 'gh-secret-value', processing_mode: 'store_and_forward', forward_url: 'https://user:pw@hooks.example.com/in?key=1',
    forward_headers: { authorization: 'Bearer receiver-token' }, transform: '{ "n": payload.n }', max_body: '256KiB',
  })
  assert.ok(typeof created.forward_secret === 'string', 'a generated forward secret is shown once')
  await call(ctx, 'PUT', '/admin/tools/gh', 200, { provider: 'github', tenant_id: 'acme' })
  await call(ctx, 'PUT', '/admin/tools/gh', 400, { provider: 'github', colour: 'blue' })
  await call(ctx, 'PUT', '/admin/tools/other-id', 400, { id: 'gh', provider: 'github', secret: 's' })
  const listed = await call(ctx, 'GET', '/admin/tools', 200)
  assert.equal(listed.tools.map((t: { id: string; source: string }) => [t.id, t.source]), [['from-yaml', 'config'], ['gh', 'store']])
  await call(ctx, 'GET', '/admin/tools/gh', 200)
  await call(ctx, 'GET', '/admin/tools/from-yaml', 200)
  await call(ctx, 'GET', '/admin/tools/nope', 404)

  // secrets
  await call(ctx, 'POST', '/admin/tools/gh/secret/rotate', 200, { secret: 'gh-secret-next', previous_expires_in: '1h' })
  await call(ctx, 'POST', '/admin/tools/gh/secret/rotate', 400, {})
  await call(ctx, 'POST', '/admin/tools/nope/secret/rotate', 404, { secret: 'x' })
  await call(ctx, 'POST', '/admin/tools/gh/secret/retire', 200)
  await call(ctx, 'POST', '/admin/tools/from-yaml/secret/retire', 409)
  const rotated = await call(ctx, 'POST', '/admin/tools/gh/forward-secret/rotate', 200, {})
  assert.match(rotated.forward_secret, /^whsec_/)
  await call(ctx, 'POST', '/admin/tools/from-yaml/forward-secret/rotate', 409, {})
  await call(ctx, 'POST', '/admin/tools/gh/forward-secret/retire', 200)
  await call(ctx, 'POST', '/admin/tools/nope/forward-secret/retire', 404)

  // destinations
  await call(ctx, 'GET', '/admin/tools/gh/destinations', 200)
  await call(ctx, 'GET', '/admin/tools/nope/destinations', 404)
  const added = await call(ctx, 'POST', '/admin/tools/gh/destinations', 201, { id: 'ci', url: 'https://ci.example.com/in', event_types: ['webhook.github.push*'],
    filter: 'ref = "refs/heads/main"', headers: { authorization: 'Bearer ci' }, rate_limit: { per_second: 10 }, retry_policy: { max_retries: 2 } })
  assert.match(added.secret, /^whsec_/)
  await call(ctx, 'POST', '/admin/tools/gh/destinations', 409, { id: 'ci', url: 'https://ci.example.com/in' })
  await call(ctx, 'POST', '/admin/tools/gh/destinations', 400, { id: 'bad', url: 'https://x.example.com', filter: '(' })
  await call(ctx, 'POST', '/admin/tools/nope/destinations', 404, { id: 'x', url: 'https://x.example.com' })
  const shown = await call(ctx, 'GET', '/admin/tools/gh/destinations/ci', 200)
  await call(ctx, 'GET', '/admin/tools/gh/destinations/nope', 404)
  await call(ctx, 'PUT', '/admin/tools/gh/destinations/ci', 200, { ...shown.destination, timeout: '2s' })
  await call(ctx, 'PUT', '/admin/tools/gh/destinations/audit', 201, { url: 'https://audit.example.com/in' })
  await call(ctx, 'PUT', '/admin/tools/gh/destinations/default', 409, { url: 'https://audit.example.com/in' })
  await call(ctx, 'PUT', '/admin/tools/gh/destinations/ci', 400, { url: 'https://ci.example.com/in', timeout: 'soon' })
  await call(ctx, 'PATCH', '/admin/tools/gh/destinations/ci', 200, { enabled: false })
  await call(ctx, 'PATCH', '/admin/tools/gh/destinations/nope', 404, { enabled: false })
  await call(ctx, 'PATCH', '/admin/tools/gh/destinations/default', 409, { enabled: false })
  const rotatedDest = await call(ctx, 'POST', '/admin/tools/gh/destinations/ci/secret/rotate', 200, { previous_expires_in: '1h' })
  assert.match(rotatedDest.secret, /^whsec_/)
  await call(ctx, 'POST', '/admin/tools/gh/destinations/ci/secret/rotate', 400, { secret: 42 })
  await call(ctx, 'POST', '/admin/tools/gh/destinations/nope/secret/rotate', 404, {})
  await call(ctx, 'POST', '/admin/tools/gh/destinations/ci/secret/retire', 200)
  await call(ctx, 'POST', '/admin/tools/gh/destinations/default/secret/retire', 409)
  await call(ctx, 'GET', '/admin/tools/gh', 200)
  await call(ctx, 'DELETE', '/admin/tools/gh/destinations/audit', 204)
  await call(ctx, 'DELETE', '/admin/tools/gh/destinations/audit', 404)
  await call(ctx, 'DELETE', '/admin/tools/from-yaml/destinations/x', 409)

  // DLQ and event fates: one event stored, dead-lettered events of two tools sharing a delivery id
  const shared = `shared-${randomUUID()}`
  const [first, second, third, fourth] = await seedDlq(ctx.handle, [
    { event: { tool_id: 'gh', id: shared } }, { event: { tool_id: 'gl', id: shared } }, { event: { tool_id: 'gh' } }, { event: { tool_id: 'gh' }, undecodable: true },
  ])
  const stored = makeEvent({ tool_id: 'gh' })
  await new EventStore({ db: ctx.handle.db }).write([{
    id: stored.id, tool_id: 'gh', tenant_id: stored.tenant_id, event_type: stored.event_type, repository: stored.repository,
    payload: stored.payload, stream_id: '1-0', received_at: stored.timestamp,
  }])
  const page = await call(ctx, 'GET', '/admin/dlq?limit=2', 200)
  await call(ctx, 'GET', `/admin/dlq?limit=2&cursor=${encodeURIComponent(page.next_cursor)}`, 200)
  await call(ctx, 'GET', '/admin/dlq?status=open', 400)
  await call(ctx, 'GET', `/admin/dlq/${first!.id}`, 200)
  await call(ctx, 'GET', `/admin/dlq/${fourth!.id}`, 200)
  await call(ctx, 'GET', '/admin/dlq/abc', 400)
  await call(ctx, 'GET', '/admin/dlq/999999', 404)
  await call(ctx, 'POST', `/admin/dlq/${first!.id}/retry`, 200)
  await call(ctx, 'POST', `/admin/dlq/${first!.id}/retry`, 409)
  await call(ctx, 'POST', '/admin/dlq/999999/retry', 404)
  await call(ctx, 'POST', '/admin/dlq/retry', 200, { tool: 'gl' })
  await call(ctx, 'POST', '/admin/dlq/retry', 400, {})
  await call(ctx, 'POST', `/admin/dlq/${third!.id}/discard`, 200)
  await call(ctx, 'POST', `/admin/dlq/${third!.id}/discard`, 409)
  await call(ctx, 'POST', '/admin/dlq/0/discard', 400)
  await ctx.handle.db.insertInto('webhook_deliveries').values([
    { tool_id: 'gh', event_id: stored.id, destination_id: 'gh', attempt: 1, started_at: new Date(), duration_ms: 12, http_status: 503,
      error_class: 'transient', error_code: 'DESTINATION_5XX', response_body: 'busy', next_attempt_at: new Date() },
    { tool_id: 'gh', event_id: stored.id, destination_id: 'gh', attempt: 2, started_at: new Date(), duration_ms: 9, http_status: 200 },
  ]).execute()
  await call(ctx, 'GET', `/admin/tools/gh/events/${shared}`, 200)
  await call(ctx, 'GET', `/admin/tools/gh/events/${stored.id}`, 200)
  await call(ctx, 'GET', `/admin/tools/gh/events/${second!.event.id}-nope`, 404)
  assert.is((await call(ctx, 'GET', `/admin/events/${shared}`, 200)).events.length, 2)
  const fate = (await call(ctx, 'GET', `/admin/events/${stored.id}`, 200)).event
  assert.is(fate.state, 'stored')
  assert.equal(fate.attempts.map((d: { destination_id: string; attempts: { http_status: number }[] }) => [d.destination_id, d.attempts.map((a) => a.http_status)]), [['gh', [503, 200]]])
  await call(ctx, 'GET', '/admin/events/never-seen', 404)
  assert.equal((await call(ctx, 'GET', `/admin/tools/gh/events/${stored.id}/content`, 200)).payload, stored.payload)
  await call(ctx, 'GET', `/admin/tools/gh/events/${shared}/content`, 200)
  await call(ctx, 'GET', '/admin/tools/gh/events/never-seen/content', 404)
  const overview = await call(ctx, 'GET', '/admin/overview', 200)
  assert.is(overview.dlq.open, 3, 'the DLQ depth counts the open rows: two re-queued, one undecodable pending')
  await call(ctx, 'GET', '/admin/overview', 401, undefined, null)
  const found = await call(ctx, 'GET', '/admin/events?limit=1', 200)
  assert.is(found.events.length, 1)
  const rest = await call(ctx, 'GET', `/admin/events?limit=500&cursor=${encodeURIComponent(found.next_cursor)}`, 200)
  assert.is(found.events.length + rest.events.length, 4, 'the stored event and the three open dead letters (one was discarded)')
  assert.equal((await call(ctx, 'GET', `/admin/events?tool=gh&status=stored&delivery_id=${stored.id}`, 200)).events.map((e: { status: string }) => e.status), ['stored'])
  await call(ctx, 'GET', '/admin/events?status=lost', 400)
  await call(ctx, 'GET', '/admin/events?cursor=bm90LW91cnM', 400)

  // replays: gh has two stored events, more than confirmOver (1)
  await new EventStore({ db: ctx.handle.db }).write([{ ...stored, id: `${stored.id}-2` }].map((e) => ({
    id: e.id, tool_id: 'gh', tenant_id: e.tenant_id, event_type: e.event_type, repository: e.repository, payload: e.payload, stream_id: '2-0', received_at: e.timestamp,
  })))
  assert.is((await call(ctx, 'POST', '/admin/replays', 200, { tool: 'gh', status: 'stored', dry_run: true })).matched, 2)
  await call(ctx, 'POST', '/admin/replays', 409, { tool: 'gh', status: 'stored' })
  await call(ctx, 'POST', '/admin/replays', 400, { dry_run: true })
  await call(ctx, 'POST', '/admin/replays', 400, { tool: ['gh'] })
  const replay = (await call(ctx, 'POST', '/admin/replays', 202, { tool: 'gh', status: 'stored', confirm: true, destination: 'ci' })).replay
  await call(ctx, 'GET', `/admin/replays/${replay.id}`, 200)
  await call(ctx, 'GET', '/admin/replays/rpl_nope', 404)
  // circuit breakers, as a worker publishes them
  breakerBoard(ctx.redis, ctx.keys.breakerStates, 'worker-1')({ destination: 'gh', state: 'open', consecutiveFailures: 5, openedAt: Date.now(), nextProbeAt: Date.now() + 10_000 })
  await eventually('the breaker is on the board', async () => (await call(ctx, 'GET', '/admin/breakers', 200)).breakers.length === 1)
  assert.equal((await call(ctx, 'GET', '/admin/breakers', 200)).breakers.map((b: { destination: string; worker: string; state: string }) => [b.destination, b.worker, b.state]), [['gh', 'worker-1', 'open']])
  await call(ctx, 'GET', '/admin/breakers', 401, undefined, null)

  // command dead letters
  const letter = (n: number) => ({ worker: 'features', command: 'feature/process', payload: `{"n":${n}}`, error: new PipelineError('permanent', 'BOOM', 'it broke'), streamId: `${n}-0`, attempts: 3 })
  const ids = [await writeDeadLetter(ctx.redis, commandDlqStream(ctx.commands), letter(1)), await writeDeadLetter(ctx.redis, commandDlqStream(ctx.commands), letter(2))]
  await call(ctx, 'GET', '/admin/commands/dlq?worker=features', 200)
  await call(ctx, 'GET', '/admin/commands/dlq?limit=0', 400)
  await call(ctx, 'GET', `/admin/commands/dlq/${ids[0]}`, 200)
  await call(ctx, 'GET', '/admin/commands/dlq/not-an-id', 400)
  await call(ctx, 'GET', '/admin/commands/dlq/1-1', 404)
  await call(ctx, 'POST', `/admin/commands/dlq/${ids[0]}/retry`, 200)
  await call(ctx, 'POST', `/admin/commands/dlq/${ids[0]}/retry`, 404)
  await call(ctx, 'POST', `/admin/commands/dlq/${ids[1]}/discard`, 200)
  await call(ctx, 'POST', '/admin/commands/dlq/bad/discard', 400)

  // deletes last
  await call(ctx, 'DELETE', '/admin/tools/from-yaml', 409)
  await call(ctx, 'DELETE', '/admin/tools/gh', 204)
  await call(ctx, 'DELETE', '/admin/tools/gh', 404)

  // the failed-login throttle: five wrong tokens from this address, then 429 before any compare
  for (let i = 0; i < 5; i++) await call(ctx, 'GET', '/admin/tools', 401, undefined, 'wrong-token-wrong-token')
  await call(ctx, 'GET', '/admin/tools', 429, undefined, TOKEN)

  // every route was checked with a success and with an error answer
  for (const route of ctx.routes.map(routeKey).filter((k) => k !== 'get /admin/openapi.json')) {
    const statuses = [...(ctx.seen.get(route) ?? [])]
    assert.ok(statuses.some((s) => s < 300), `${route}: no success answer was checked`)
    assert.ok(statuses.some((s) => s >= 400), `${route}: no error answer was checked`)
  }
})

Api.run()
