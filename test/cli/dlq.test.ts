import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { dlqCommand } from '../../src/cli/commands/dlq.js'
import { seedDlq, streamEvents } from '../db/dlq-seed.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const Dlq = suite<{ w: CliWorld }>('hookstream dlq', {} as { w: CliWorld })
Dlq.before.each(async (ctx) => { ctx.w = await cliWorld() })
Dlq.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Dlq('list pages with --limit and --cursor, filters by --status, --tool and --event-type, and prints a table or JSON', async ({ w }) => {
  await seedDlq(w.db, Array.from({ length: 25 }, (_, i) => ({ event: { tool_id: i < 20 ? 'gh' : 'gl' }, status: i < 3 ? 'failed' as const : 'pending' as const })))
  const ids = new Set<number>()
  let cursor: string | undefined
  let pages = 0
  do {
    const r = await w.run(dlqCommand, ['list'], { json: true, limit: '10', ...(cursor ? { cursor } : {}) })
    assert.is(r.code, 0, r.err)
    const page = JSON.parse(r.out) as { entries: { id: number }[]; next_cursor: string | null }
    for (const e of page.entries) ids.add(e.id)
    cursor = page.next_cursor ?? undefined
    pages++
  } while (cursor)
  assert.equal([pages, ids.size], [3, 25])
  const table = await w.run(dlqCommand, ['list'], { limit: '10' })
  assert.match(table.out, /^ID\s+STATUS\s+TOOL\s+EVENT_TYPE/)
  assert.match(table.out, /more: hookstream dlq list --cursor \S+/)
  assert.is(table.out.split('\n').length, 12)
  const gl = JSON.parse((await w.run(dlqCommand, ['list'], { json: true, tool: 'gl' })).out)
  assert.is(gl.entries.length, 5)
  const failed = JSON.parse((await w.run(dlqCommand, ['list'], { json: true, status: 'failed', 'event-type': 'webhook.github.push' })).out)
  assert.is(failed.entries.length, 3)
})

Dlq('show prints the entry, the event and its history; retry <id> re-queues it with retry_count + 1', async ({ w }) => {
  const [row] = await seedDlq(w.db, [{}])
  const retried = await w.run(dlqCommand, ['retry', String(row!.id)])
  assert.is(retried.code, 0, retried.err)
  assert.match(retried.out, new RegExp(`DLQ entry ${row!.id} \\(event ${row!.event.id}\\) re-queued as stream entry \\d+-\\d+, retry 1`))
  const events = await streamEvents(w.redis, w.keys.stream)
  assert.equal(events, [{ ...row!.event, retry_count: 1 }])
  const show = await w.run(dlqCommand, ['show', String(row!.id)])
  assert.match(show.out, /status:\s+retrying/)
  assert.match(show.out, /history:\nAT\s+ACTION\s+ACTOR/)
  assert.match(show.out, /dlq_requeued\s+cli/)
  assert.match(show.out, /"auth_context"/)
  const again = await w.run(dlqCommand, ['retry', String(row!.id)])
  assert.equal([again.code, again.out], [1, ''])
  assert.match(again.err, /is retrying since .*it can be re-queued again once it has been retrying for an hour/)
})

Dlq('retry --all with filters re-queues exactly the matching rows; without --all or an id it refuses', async ({ w }) => {
  const rows = await seedDlq(w.db, [{ event: { tool_id: 'gh' } }, { event: { tool_id: 'gh' }, status: 'failed' }, { event: { tool_id: 'gl' } }, { event: { tool_id: 'gh' }, undecodable: true }])
  const refused = await w.run(dlqCommand, ['retry'], { tool: 'gh' })
  assert.equal([refused.code, /needs an entry id, or --all/.test(refused.err)], [2, true])
  const r = await w.run(dlqCommand, ['retry'], { all: true, tool: 'gh', json: true })
  assert.is(r.code, 0, r.err)
  assert.is(JSON.parse(r.out).requeued, 2)
  assert.equal(new Set((await streamEvents(w.redis, w.keys.stream)).map((e) => e.id)), new Set([rows[0]!.event.id, rows[1]!.event.id]))
  const undecodable = await w.run(dlqCommand, ['retry', String(rows[3]!.id)])
  assert.is(undecodable.code, 1)
  assert.match(undecodable.err, /could not be decoded as an event, so it cannot be re-queued/)
})

Dlq('discard, then purge of discarded rows older than the cut-off', async ({ w }) => {
  const [row] = await seedDlq(w.db, [{}, { status: 'resolved' }])
  const discarded = await w.run(dlqCommand, ['discard', String(row!.id)])
  assert.equal([discarded.code, discarded.out], [0, `DLQ entry ${row!.id} (event ${row!.event.id}) discarded`])
  assert.match((await w.run(dlqCommand, ['purge'])).out, /^0 DLQ entries deleted/)
  await w.db.db.updateTable('webhook_dlq').set({ updated_at: new Date(Date.now() - 3_600_000) }).execute()
  const purged = await w.run(dlqCommand, ['purge'], { status: 'discarded', 'older-than': '30m', json: true })
  assert.equal(JSON.parse(purged.out), { deleted: 1 })
  const rest = await w.db.db.selectFrom('webhook_dlq').select('status').execute()
  assert.equal(rest.map((r) => r.status), ['resolved'])
  for (const [args, flags, message, code] of [
    [['purge'], { status: 'failed' }, /--status must be resolved and\/or discarded/, 2],
    [['purge'], { 'older-than': 'a week' }, /--older-than must be a duration/, 2],
    [['show', 'abc'], {}, /needs a DLQ entry id/, 2],
    [['show', '424242'], {}, /DLQ entry 424242 does not exist/, 1],
    [['list'], { status: 'open' }, /"status" must be one or more of/, 2],
  ] as const) {
    const r = await w.run(dlqCommand, [...args], flags)
    assert.is(r.code, code, args.join(' '))
    assert.match(r.err, message)
  }
})

Dlq.run()
