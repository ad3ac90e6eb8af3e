import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql } from 'kysely'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { decodeSearchCursor, parseEventSearch } from '../../src/db/event-search-filter.js'
import { searchEvents } from '../../src/db/event-search.js'
import { isPipelineError, type PipelineError } from '../../src/core/errors.js'
import { sharedPostgres } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const Search = suite<{ handle: Db }>('event search', {} as { handle: Db })

Search.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 4 })
  await migrateToLatest(ctx.handle.db)
})
Search.after.each((ctx) => release(ctx, { handle: (h) => h.close() }))

const BASE = Date.parse('2026-03-01T12:00:00Z')
const at = (minutes: number) => new Date(BASE + minutes * 60_000).toISOString()

interface Seed { tool: string; id: string; minutes: number; type?: string; tenant?: string; repository?: string; forwarded?: boolean }
async function store(handle: Db, ...events: Seed[]): Promise<void> {
  await handle.db.insertInto('webhook_events').values(events.map((e) => ({
    id: e.id, tool_id: e.tool, tenant_id: e.tenant ?? 'acme', event_type: e.type ?? 'webhook.github.push', repository: e.repository ?? 'acme/api',
    payload: '{"secret":"not listed"}', stream_id: '1-0', received_at: at(e.minutes), forwarded_at: e.forwarded ? at(e.minutes + 1) : null,
  }))).execute()
}
async function deadLetter(handle: Db, tool: string, id: string, status: string, minutes: number, type = 'webhook.github.push'): Promise<void> {
  await sql`INSERT INTO webhook_dlq (event_id, tool_id, event, error, error_class, status, failed_at)
    VALUES (${id}, ${tool}, ${JSON.stringify({ id, tool_id: tool, tenant_id: 'acme', event_type: type, repository: 'acme/web' })}::jsonb,
      'HTTP 500', 'transient', ${status}, ${at(minutes)})`.execute(handle.db)
}
// one event in each status: gh stores, fwd (config file) and fwd-db (webhook_tools) forward
async function seedStatuses(handle: Db): Promise<void> {
  await sql`INSERT INTO webhook_tools (id, provider, processing_mode, forward_url, retry_policy)
    VALUES ('fwd-db', 'github', 'store_and_forward', 'http://127.0.0.1:9/', '{}')`.execute(handle.db)
  await store(handle,
    { tool: 'gh', id: 'gh-stored', minutes: 1 },
    { tool: 'fwd', id: 'fwd-forwarded', minutes: 2, forwarded: true },
    { tool: 'fwd', id: 'fwd-pending', minutes: 3 },
    { tool: 'fwd', id: 'fwd-dead', minutes: 4 },
    { tool: 'fwd-db', id: 'fwddb-pending', minutes: 8 })
  await deadLetter(handle, 'fwd', 'fwd-dead', 'pending', 20)
  await deadLetter(handle, 'gh', 'gh-never-stored', 'retrying', 5)
  await deadLetter(handle, 'gh', 'gh-gave-up', 'failed', 6)
  await deadLetter(handle, 'gh', 'gh-resolved', 'resolved', 7)
}
const ids = (page: { events: { delivery_id: string }[] }) => page.events.map((e) => e.delivery_id)
const search = (handle: Db, params: Record<string, string>) => searchEvents(handle.db, parseEventSearch(params), ['fwd'])

Search('lists stored events and open dead letters newest first, each with its status and no payload', async ({ handle }) => {
  await seedStatuses(handle)
  const page = await search(handle, {})
  assert.equal(page.events.map((e) => [e.delivery_id, e.status]), [
    ['fwddb-pending', 'pending_delivery'], ['gh-gave-up', 'failed'], ['gh-never-stored', 'dead_lettered'],
    ['fwd-dead', 'dead_lettered'], ['fwd-pending', 'pending_delivery'], ['fwd-forwarded', 'forwarded'], ['gh-stored', 'stored'],
  ])
  assert.is(page.next_cursor, null)
  const dead = page.events.find((e) => e.delivery_id === 'fwd-dead')
  assert.equal(dead?.received_at?.toISOString(), at(4), 'a stored dead letter sorts by received_at')
  assert.ok(dead?.dlq_id !== undefined && dead.failed_at?.toISOString() === at(20))
  const unstored = page.events.find((e) => e.delivery_id === 'gh-never-stored')
  assert.equal([unstored?.received_at, unstored?.stream_id, unstored?.repository, unstored?.event_type], [null, null, 'acme/web', 'webhook.github.push'])
  assert.not.ok(JSON.stringify(page).includes('not listed'), 'no payload in a list')
})

Search('each status filter returns exactly the events in that status', async ({ handle }) => {
  await seedStatuses(handle)
  const byStatus: Record<string, string[]> = {}
  for (const status of ['stored', 'forwarded', 'pending_delivery', 'dead_lettered', 'failed']) byStatus[status] = ids(await search(handle, { status }))
  assert.equal(byStatus, {
    stored: ['gh-stored'], forwarded: ['fwd-forwarded'], pending_delivery: ['fwddb-pending', 'fwd-pending'],
    dead_lettered: ['gh-never-stored', 'fwd-dead'], failed: ['gh-gave-up'],
  })
  assert.equal(ids(await search(handle, { status: 'dead_lettered', tool: 'fwd' })), ['fwd-dead'])
})

Search('filters by tool, tenant, repository, delivery id, time range and exact or glob event type', async ({ handle }) => {
  await store(handle,
    { tool: 'gh', id: 'a', minutes: 1, type: 'webhook.github.pull_request' },
    { tool: 'gh', id: 'b', minutes: 2, type: 'webhook.github.pull_request_review', tenant: 'globex' },
    { tool: 'gh', id: 'c', minutes: 3, type: 'webhook.github.pullXrequest', repository: 'acme/web' },
    { tool: 'gl', id: 'd', minutes: 4, type: 'webhook.github.pull_request' },
    { tool: 'gl', id: 'a', minutes: 5, type: 'webhook.gitlab.push' })
  assert.equal(ids(await search(handle, { tool: 'gh' })), ['c', 'b', 'a'])
  assert.equal(ids(await search(handle, { event_type: 'webhook.github.pull_request' })), ['d', 'a'])
  assert.equal(ids(await search(handle, { event_type: 'webhook.github.pull_request*' })), ['d', 'b', 'a'], '"_" is literal, "*" is the wildcard')
  assert.equal(ids(await search(handle, { tool: 'gh', event_type: '*request*' })), ['c', 'b', 'a'])
  assert.equal(ids(await search(handle, { tenant: 'globex' })), ['b'])
  assert.equal(ids(await search(handle, { repository: 'acme/web' })), ['c'])
  assert.equal((await search(handle, { delivery_id: 'a' })).events.map((e) => e.tool_id), ['gl', 'gh'])
  assert.equal(ids(await search(handle, { from: at(2), to: at(4) })), ['c', 'b'], 'from is inclusive, to exclusive')
})

Search('pages are stable while events are inserted between reads: every event once, none skipped', async ({ handle }) => {
  // 3 tools × 400 events on 50 distinct timestamps, so many share a received_at and the tie-break decides
  await sql`INSERT INTO webhook_events (id, tool_id, tenant_id, event_type, repository, payload, stream_id, received_at)
    SELECT 'e' || n, 'tool-' || (n % 3), 'acme', 'webhook.github.push', 'acme/api', '{}'::jsonb, '1-0', ${at(0)}::timestamptz + make_interval(secs => n % 50)
    FROM generate_series(1, 1200) AS n`.execute(handle.db)
  const seen: string[] = []
  let cursor: string | undefined
  let pages = 0
  do {
    const page = await search(handle, { limit: '37', ...(cursor ? { cursor } : {}) })
    seen.push(...page.events.map((e) => `${e.tool_id}/${e.delivery_id}`))
    cursor = page.next_cursor ?? undefined
    pages++
    // newer events arrive, and one at the very time of the page's last event
    const last = page.events[page.events.length - 1]
    await store(handle, { tool: 'tool-0', id: `late-${pages}`, minutes: 60 }, { tool: 'tool-9', id: `tie-${pages}`, minutes: 0 })
    if (cursor && last) await sql`UPDATE webhook_events SET received_at = ${last.received_at} WHERE id = ${`tie-${pages}`}`.execute(handle.db)
  } while (cursor)
  assert.is(pages, Math.ceil(1200 / 37))
  assert.is(seen.length, 1200)
  assert.is(new Set(seen).size, 1200, 'no event twice')
  assert.ok(seen.every((s) => /^tool-[012]\/e\d+$/.test(s)), 'events inserted after the first page never show up behind the cursor')
})

Search('every bad parameter is refused with EVENT_FILTER_INVALID naming it; a foreign cursor with EVENT_CURSOR_INVALID', () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ status: 'lost' }, 'EVENT_FILTER_INVALID', /"status" must be one of stored, forwarded, pending_delivery, dead_lettered, failed/],
    [{ limit: '0' }, 'EVENT_FILTER_INVALID', /"limit" must be an integer from 1 to 500/],
    [{ limit: '501' }, 'EVENT_FILTER_INVALID', /"limit"/],
    [{ limit: '2x' }, 'EVENT_FILTER_INVALID', /"limit"/],
    [{ from: 'yesterday' }, 'EVENT_FILTER_INVALID', /"from" must be an ISO 8601 time/],
    [{ to: '2024-13-45T00:00:00Z' }, 'EVENT_FILTER_INVALID', /"to" must be an ISO 8601 time/],
    [{ from: '2024-02-01T00:00:00Z', to: '2024-01-01T00:00:00Z' }, 'EVENT_FILTER_INVALID', /"from" .* must be before "to"/],
    [{ tool: '' }, 'EVENT_FILTER_INVALID', /"tool" must be 1–256 printable characters/],
    [{ tenant: 'a\nb' }, 'EVENT_FILTER_INVALID', /"tenant"/],
    [{ repository: 'r'.repeat(257) }, 'EVENT_FILTER_INVALID', /"repository"/],
    [{ event_type: '' }, 'EVENT_FILTER_INVALID', /"event_type"/],
    [{ delivery_id: '\u0000' }, 'EVENT_FILTER_INVALID', /"delivery_id"/],
    [{ type: 'webhook.github.push' }, 'EVENT_FILTER_INVALID', /unknown event search parameter\(s\) "type"/],
    [{ cursor: 'bm90LW91cnM' }, 'EVENT_CURSOR_INVALID', /not one this server issued/],
    [{ cursor: Buffer.from(JSON.stringify(['ev1', 'yesterday', 'gh', 'a'])).toString('base64url') }, 'EVENT_CURSOR_INVALID', /cursor/],
  ]
  for (const [params, code, message] of cases) {
    try {
      parseEventSearch(params)
      assert.unreachable(`${JSON.stringify(params)} was accepted`)
    } catch (err) {
      assert.ok(isPipelineError(err), `${JSON.stringify(params)}: ${String(err)}`)
      assert.is((err as PipelineError).code, code, JSON.stringify(params))
      assert.match((err as Error).message, message)
    }
  }
  assert.is(cases.length, 15)
  assert.equal(parseEventSearch({}).limit, 50)
  const cursor = Buffer.from(JSON.stringify(['ev1', '2026-03-01T12:00:00.000001Z', 'gh', 'a'])).toString('base64url')
  assert.equal(decodeSearchCursor(cursor), { at: '2026-03-01T12:00:00.000001Z', toolId: 'gh', deliveryId: 'a' })
})

Search.run()
