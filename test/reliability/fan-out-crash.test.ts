import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { startReceiver, type Receiver } from '../helpers/pipeline.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { FORWARD_SECRET, openSpace, SECRET, type Space } from './fixture.js'
import { release } from '../helpers/release.js'

const EVENTS = 1000
interface Ctx { s: Space; receivers: Receiver[] }
const Crash = suite<Ctx>('fan-out with a worker killed -9', {} as Ctx)
Crash.before(async (ctx) => {
  ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  // each answer takes 20 ms, so a worker always has deliveries in flight while it has work: on loopback they took
  // well under a millisecond, and the kill could land between two batches with nothing in flight
  const slow = () => startReceiver(() => new Promise((resolve) => setTimeout(() => resolve(200), 20)))
  ctx.receivers = await Promise.all([slow(), slow(), slow()])
})
Crash.after((ctx) => release(ctx, { receivers: (rs) => Promise.all(rs.map((r) => r.close())), s: (s) => s.close() }))

const typeOf = (i: number) => (i % 3 === 0 ? 'webhook.github.push' : i % 3 === 1 ? 'webhook.github.pull_request' : 'webhook.github.pull_request_review')

Crash(`${EVENTS} events to three filtered destinations, two workers, one killed -9 mid-delivery: every receiver gets exactly its events, duplicates only from deliveries cut off in flight`, withTimeLimit(600_000, async ({ s, receivers }) => {
  const [a, b, c] = receivers as [Receiver, Receiver, Receiver]
  const tool = {
    id: 'fan', provider: 'github', secret: SECRET, tenant_id: 'acme', forward_secret: FORWARD_SECRET,
    retry_policy: { initial_interval: '50ms', max_interval: '500ms', max_retries: 20, max_elapsed_time: '10m' },
    destinations: [
      { id: 'pushes', url: a.url, event_types: ['webhook.github.push'] },
      { id: 'prs', url: b.url, event_types: ['webhook.github.pull_request*'], filter: 'action = "opened"' },
      { id: 'big', url: c.url, filter: 'n >= 500' },
    ],
  }
  const yaml = `tools:\n  - ${JSON.stringify(tool)}\n`
  const events = Array.from({ length: EVENTS }, (_, i) => makeEvent({ tool_id: 'fan', event_type: typeOf(i), payload: { n: i, action: i % 2 ? 'opened' : 'closed' } }))
  await s.stream.addMany(events)
  const want = {
    a: new Set(events.filter((_, i) => i % 3 === 0).map((e) => e.id)),
    b: new Set(events.filter((_, i) => i % 3 !== 0 && i % 2 === 1).map((e) => e.id)),
    c: new Set(events.filter((_, i) => i >= 500).map((e) => e.id)),
  }
  const total = want.a.size + want.b.size + want.c.size
  const received = () => a.requests.length + b.requests.length + c.requests.length
  const env = (name: string) => ({ ...s.env, WORKER_CONSUMER_NAME: name, WORKER_CLAIM_IDLE: '2s', WORKER_BATCH_SIZE: '20', WORKER_BLOCK_TIMEOUT: '500ms',
    FORWARD_ALLOW_PRIVATE: '127.0.0.1/32' })
  const workers: ServiceProcess[] = await Promise.all(['w1', 'w2'].map((n) => startServiceProcess(env(n), yaml, ['--role', 'worker'])))
  try {
    const inFlightOf = async (consumer: string) => {
      const [, , , consumers] = (await s.redis.call('XPENDING', s.keys.deliveryStream, s.keys.deliveryGroup)) as [number, unknown, unknown, [string, string][] | null]
      return Number((consumers ?? []).find(([name]) => name === consumer)?.[1] ?? 0)
    }
    await eventually('a tenth of the deliveries made', () => received() >= total / 10, 120_000)
    await eventually('w1 holds unacked deliveries', async () => (await inFlightOf('w1')) > 0, 60_000)
    workers[0]!.child.kill('SIGKILL')
    assert.is(await workers[0]!.exited, 'SIGKILL')
    // read after the kill: the dead consumer's pending list is what it had read and not acked
    const inFlightAtKill = await inFlightOf('w1')
    const receivedAtKill = received()
    assert.ok(inFlightAtKill > 0, 'the kill cut off deliveries in flight')
    workers[0] = await startServiceProcess(env('w1'), yaml, ['--role', 'worker'])
    assert.ok(receivedAtKill < total, `the kill landed mid-run (${receivedAtKill} of ${total} received)`)
    const distinct = (r: Receiver) => new Set(r.requests.map((q) => String(q.headers['webhook-id'])))
    await eventually('every receiver has all of its events', () =>
      distinct(a).size >= want.a.size && distinct(b).size >= want.b.size && distinct(c).size >= want.c.size, 300_000)
    assert.equal([...distinct(a)].sort(), [...want.a].sort())
    assert.equal([...distinct(b)].sort(), [...want.b].sort())
    assert.equal([...distinct(c)].sort(), [...want.c].sort())
    await eventually('every fan-out state final', async () => {
      const rows = await s.db.db.selectFrom('webhook_events').select('deliveries').execute()
      return rows.length === EVENTS && rows.every((r) => Object.values(r.deliveries ?? {}).every((d) => d.state === 'delivered' || d.state === 'filtered'))
    }, 60_000)
    const duplicates = received() - total
    assert.ok(duplicates <= inFlightAtKill, `duplicates (${duplicates}) come only from the ${inFlightAtKill} deliveries the kill cut off in flight`)
    assert.is(await s.rows('webhook_dlq'), 0)
    console.log(`  ${total} deliveries, killed with ${inFlightAtKill} in flight after ${receivedAtKill}: ${duplicates} re-sent (same webhook-id)`)
  } finally {
    for (const w of workers) w.child.kill('SIGTERM')
    await Promise.all(workers.map((w) => w.exited))
  }
}))

Crash.run()
