import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { eventsCommand } from '../../src/cli/commands/events.js'
import { DlqStore } from '../../src/db/dlq-store.js'
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

Events.run()
