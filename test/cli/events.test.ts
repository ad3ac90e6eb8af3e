import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { eventsCommand } from '../../src/cli/commands/events.js'
import { DlqStore } from '../../src/db/dlq-store.js'
import { EventStore } from '../../src/db/event-store.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { seedDlq } from '../db/dlq-seed.js'
import { makeEvent } from '../helpers/events.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const Events = suite<{ w: CliWorld }>('hookstream events', {} as { w: CliWorld })
Events.before.each(async (ctx) => { ctx.w = await cliWorld() })
Events.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Events('show tells a forwarded event apart from a dead-lettered, re-queued and resolved one', async ({ w }) => {
  const event = makeEvent()
  await w.db.db.insertInto('webhook_events').values({
    id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type, repository: event.repository,
    payload: JSON.stringify(event.payload), stream_id: '1700000000000-3', received_at: event.timestamp, forwarded_at: new Date(),
  }).execute()
  const forwarded = JSON.parse((await w.run(eventsCommand, ['show', event.id], { json: true })).out)
  assert.equal([forwarded.state, forwarded.stored.stream_id, forwarded.accepted_at, forwarded.dlq], ['forwarded', '1700000000000-3', event.timestamp, []])

  const [row] = await seedDlq(w.db, [{}])
  const dlq = new DlqStore({ db: w.db.db, stream: new StreamClient({ redis: w.redis, stream: w.keys.stream }) })
  assert.equal(JSON.parse((await w.run(eventsCommand, ['show', row!.event.id], { json: true })).out).state, 'dead_lettered')
  await dlq.retryOne(row!.id, 'test')
  await w.db.db.updateTable('webhook_dlq').set({ status: 'resolved', resolved_at: new Date() }).execute()
  const resolved = JSON.parse((await w.run(eventsCommand, ['show', row!.event.id], { json: true })).out)
  assert.equal([resolved.state, resolved.tool_id, resolved.event_type, resolved.dlq.length, resolved.history.map((h: { action: string }) => h.action)],
    ['resolved', row!.event.tool_id, row!.event.event_type, 1, ['dlq_requeued']])
  const human = await w.run(eventsCommand, ['show', row!.event.id])
  assert.match(human.out, /state:\s+resolved/)
  assert.match(human.out, /stored:\s+no/)
  assert.match(human.out, /dlq_requeued\s+test/)
})

Events('show lists the fan-out state per destination, with retries and the error code of a failed one', async ({ w }) => {
  const event = makeEvent()
  const at = new Date().toISOString()
  await w.db.db.insertInto('webhook_events').values({
    id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type, repository: event.repository,
    payload: JSON.stringify(event.payload), stream_id: '1700000000000-4', received_at: event.timestamp,
    deliveries: JSON.stringify({ ci: { state: 'delivered', attempts: 0, at }, audit: { state: 'failed', attempts: 3, error_code: 'DESTINATION_4XX', at },
      prs: { state: 'filtered', at }, slow: { state: 'pending', attempts: 2, at } }),
  }).execute()
  const json = JSON.parse((await w.run(eventsCommand, ['show', event.id], { json: true })).out)
  assert.equal(Object.fromEntries(Object.entries(json.deliveries as Record<string, { state: string }>).map(([k, v]) => [k, v.state])),
    { ci: 'delivered', audit: 'failed', prs: 'filtered', slow: 'pending' })
  const human = (await w.run(eventsCommand, ['show', event.id])).out
  assert.match(human, /destinations:\n\s*DESTINATION\s+STATE\s+RETRIES\s+CODE/)
  assert.match(human, /audit\s+failed\s+3\s+DESTINATION_4XX/)
  assert.match(human, /slow\s+pending\s+2/)
})

Events('show lists the delivery attempts per destination with status, duration and next attempt', async ({ w }) => {
  const event = makeEvent()
  await new EventStore({ db: w.db.db }).write([{ id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type,
    repository: event.repository, payload: event.payload, stream_id: '1700000000000-4', received_at: event.timestamp }])
  const at = new Date('2026-01-02T03:04:05.000Z')
  await w.db.db.insertInto('webhook_deliveries').values([
    { tool_id: event.tool_id, event_id: event.id, destination_id: event.tool_id, attempt: 1, started_at: at, duration_ms: 31, http_status: 500,
      error_class: 'transient', error_code: 'DESTINATION_5XX', response_body: 'boom', next_attempt_at: new Date(at.getTime() + 1000) },
    { tool_id: event.tool_id, event_id: event.id, destination_id: event.tool_id, attempt: 2, started_at: new Date(at.getTime() + 1000), duration_ms: 12, http_status: 200 },
  ]).execute()
  const json = JSON.parse((await w.run(eventsCommand, ['show', event.id], { json: true })).out)
  assert.equal(json.attempts.map((d: { destination_id: string; attempts: { attempt: number; http_status: number; error_code: string | null }[] }) =>
    [d.destination_id, d.attempts.map((a) => [a.attempt, a.http_status, a.error_code])]), [[event.tool_id, [[1, 500, 'DESTINATION_5XX'], [2, 200, null]]]])
  const human = await w.run(eventsCommand, ['show', event.id])
  assert.match(human.out, /delivery attempts:/)
  assert.match(human.out, new RegExp(`${event.tool_id}\\s+1\\s+2026-01-02T03:04:05.000Z\\s+31\\s+500\\s+DESTINATION_5XX`))
})

Events('an unknown id exits 1 and a missing one exits 2 (usage), each with a clear message', async ({ w }) => {
  const unknown = await w.run(eventsCommand, ['show', 'no-such-event'])
  assert.equal([unknown.code, unknown.out], [1, ''])
  assert.match(unknown.err, /no stored row, DLQ entry or audit row has event id "no-such-event"/)
  const missing = await w.run(eventsCommand, ['show'])
  assert.is(missing.code, 2)
  assert.match(missing.err, /missing event id/)
})

Events('show <tool> <id> picks one tool\'s event; the id alone, shared by two tools, names both and exits 2 (usage: name the tool)', async ({ w }) => {
  for (const [tool, stream] of [['tool-a', '1700000000000-1'], ['tool-b', '1700000000000-2']]) {
    const event = makeEvent({ id: 'shared-7', tool_id: tool })
    await w.db.db.insertInto('webhook_events').values({
      id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type, repository: event.repository,
      payload: JSON.stringify(event.payload), stream_id: stream!, received_at: event.timestamp,
    }).execute()
  }
  const b = JSON.parse((await w.run(eventsCommand, ['show', 'tool-b', 'shared-7'], { json: true })).out)
  assert.equal([b.tool_id, b.stored.stream_id], ['tool-b', '1700000000000-2'])
  const ambiguous = await w.run(eventsCommand, ['show', 'shared-7'])
  assert.is(ambiguous.code, 2)
  assert.match(ambiguous.err, /belongs to 2 tools \(tool-a, tool-b\)/)
  const none = await w.run(eventsCommand, ['show', 'tool-c', 'shared-7'])
  assert.is(none.code, 1)
  assert.match(none.err, /of tool "tool-c"/)
})

Events('list mirrors GET /admin/events: filters and pages as JSON, a table otherwise, bad filters exit 2 with the API\'s code', async ({ w }) => {
  for (const [n, type] of [[1, 'webhook.github.pull_request'], [2, 'webhook.github.push'], [3, 'webhook.github.pull_request_review']] as const) {
    const event = makeEvent({ id: `list-${n}`, tool_id: 'gh-list', event_type: type })
    await w.db.db.insertInto('webhook_events').values({
      id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type, repository: event.repository,
      payload: JSON.stringify(event.payload), stream_id: `1700000000000-${n}`, received_at: new Date(Date.parse('2026-01-01T00:00:00Z') + n * 1000),
    }).execute()
  }
  const first = JSON.parse((await w.run(eventsCommand, ['list'], { json: true, tool: 'gh-list', type: 'webhook.github.pull_request*', limit: '1' })).out)
  assert.equal([first.events.map((e: { delivery_id: string }) => e.delivery_id), typeof first.next_cursor], [['list-3'], 'string'])
  const second = JSON.parse((await w.run(eventsCommand, ['list'], { json: true, tool: 'gh-list', type: 'webhook.github.pull_request*', limit: '1', cursor: first.next_cursor })).out)
  assert.equal([second.events.map((e: { delivery_id: string }) => e.delivery_id), second.next_cursor], [['list-1'], null])
  const table = await w.run(eventsCommand, ['list'], { status: 'stored', from: '2026-01-01T00:00:02Z' })
  assert.is(table.code, 0)
  assert.match(table.out, /^RECEIVED_AT\s+STATUS\s+TOOL\s+DELIVERY_ID/)
  assert.is(table.out.trim().split('\n').length, 3, 'a header and the two events since 00:00:02')
  assert.match(table.out, /2026-01-01T00:00:03\.000Z\s+stored\s+gh-list\s+list-3\s+webhook\.github\.pull_request_review/)
  for (const [flags, code] of [[{ status: 'lost' }, 'EVENT_FILTER_INVALID'], [{ limit: '501' }, 'EVENT_FILTER_INVALID'], [{ cursor: 'bm9wZQ' }, 'EVENT_CURSOR_INVALID']] as const) {
    const bad = await w.run(eventsCommand, ['list'], flags)
    assert.equal([bad.code, bad.out], [2, ''], JSON.stringify(flags))
    assert.match(bad.err, new RegExp(`^hookstream events: ${code}: `))
  }
  const misplaced = await w.run(eventsCommand, ['show', 'list-1'], { status: 'stored' })
  assert.is(misplaced.code, 2)
  assert.match(misplaced.err, /--status belong to "events list"/)
})

Events.run()
