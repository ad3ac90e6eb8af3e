import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { eventsCommand } from '../../src/cli/commands/events.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { parseTool } from '../../src/core/tool.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const Replay = suite<{ w: CliWorld }>('hookstream events replay', {} as { w: CliWorld })
Replay.before.each(async (ctx) => { ctx.w = await cliWorld({ REPLAY_CONFIRM_OVER: '3', HOOKSTREAM_ENCRYPTION_KEY: 'a passphrase of sixteen+ chars' }) })
Replay.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

async function seed(w: CliWorld, count: number): Promise<void> {
  await new ToolStore({ db: w.db.db, encryptionKey: 'a passphrase of sixteen+ chars' }).upsert(parseTool({
    id: 'fan', provider: 'github', secret: 'gh-secret-value', destinations: [{ id: 'ci', url: 'https://ci.example.com/hook' }, { id: 'audit', url: 'https://audit.example.com/in' }],
  }), 'test')
  await w.db.db.insertInto('webhook_events').values(Array.from({ length: count }, (_, i) => ({
    id: `fan-${i}`, tool_id: 'fan', tenant_id: 'acme', event_type: 'webhook.github.push', repository: 'acme/api', payload: JSON.stringify({ n: i }),
    stream_id: '1-0', received_at: new Date(Date.UTC(2026, 10, 27, 12, 0, i)).toISOString(),
    deliveries: JSON.stringify({ ci: { state: 'delivered', at: '2026-11-27T12:00:00Z' }, audit: { state: 'filtered', at: '2026-11-27T12:00:00Z' } }),
  }))).execute()
}

const deliveryEntries = async (w: CliWorld) => ((await w.redis.call('XRANGE', w.keys.deliveryStream, '-', '+')) as [string, string[]][])
  .map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i], f[2 * i + 1]])) as Record<string, string>)

Replay('a dry run counts; more than REPLAY_CONFIRM_OVER needs --yes; with it each event goes to the destinations it went to, audited as cli', async ({ w }) => {
  await seed(w, 5)
  const dry = await w.run(eventsCommand, ['replay'], { tool: 'fan', 'dry-run': true })
  assert.equal([dry.code, dry.out.trim()], [0, '5 events match; replaying them needs --yes'])
  const refused = await w.run(eventsCommand, ['replay'], { tool: 'fan' })
  assert.is(refused.code, 1)
  assert.match(refused.err, /REPLAY_CONFIRM_REQUIRED|matches 5 events, more than 3/)
  assert.equal(await deliveryEntries(w), [])
  const done = await w.run(eventsCommand, ['replay'], { tool: 'fan', yes: true, json: true })
  assert.is(done.code, 0, done.err)
  const record = JSON.parse(done.out)
  assert.equal([record.status, record.matched, record.sent, record.skipped, record.actor], ['done', 5, 5, 0, 'cli'])
  const entries = await deliveryEntries(w)
  assert.equal(entries.map((e) => [JSON.parse(e.event!).id, e.destination, e.replay_id]).sort(),
    Array.from({ length: 5 }, (_, i) => [`fan-${i}`, 'ci', record.id]).sort())
  const audit = await w.db.db.selectFrom('webhook_audit_log').select(['action', 'actor']).where('entity', '=', 'event').execute()
  assert.equal(audit, [{ action: 'events_replayed', actor: 'cli' }])
})

Replay('--destination sends to that one only; bad flags are usage errors that send nothing', async ({ w }) => {
  await seed(w, 2)
  const one = await w.run(eventsCommand, ['replay'], { tool: 'fan', destination: 'audit', json: true })
  assert.is(one.code, 0, one.err)
  assert.equal((await deliveryEntries(w)).map((e) => e.destination), ['audit', 'audit'])
  for (const [flags, pattern] of [
    [{}, /REPLAY_INVALID: a replay needs at least one filter/],
    [{ tool: 'fan', limit: '5' }, /--limit belongs to "events list"/],
    [{ tool: 'fan', status: 'lost' }, /EVENT_FILTER_INVALID/],
    [{ tool: 'fan', destination: 'Bad Id' }, /REPLAY_INVALID: replay parameter "destination"/],
  ] as const) {
    const r = await w.run(eventsCommand, ['replay'], flags)
    assert.is(r.code, 2, `${JSON.stringify(flags)}: ${r.err}`)
    assert.match(r.err, pattern)
  }
  assert.is((await deliveryEntries(w)).length, 2)
  const listWithYes = await w.run(eventsCommand, ['list'], { yes: true })
  assert.is(listWithYes.code, 2)
  assert.match(listWithYes.err, /--yes belong to "events replay"/)
})

Replay.run()
