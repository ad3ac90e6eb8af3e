import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { openSpace, toolsYaml, type Space } from './fixture.js'
import { release } from '../helpers/release.js'

const EVENTS = Number(process.env.RELIABILITY_EVENTS ?? 50_000)
const Crash = suite<{ s: Space }>('three workers, one killed -9 twice', {} as { s: Space })
Crash.before(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Crash.after((ctx) => release(ctx, { s: (s) => s.close() }))

Crash(`${EVENTS} events, three workers in one group, one killed -9 twice and restarted: every event stored once, nothing pending, no DLQ`, withTimeLimit(900_000, async ({ s }) => {
  const started = Date.now()
  const addEvents = async (from: number, to: number) => {
    for (let i = from; i < to; i += 2000) {
      await s.stream.addMany(Array.from({ length: Math.min(2000, to - i) }, () => makeEvent({ tool_id: 'store-tool', payload: { i } })))
    }
  }
  const firstHalf = Math.ceil(EVENTS / 2)
  await addEvents(0, firstHalf)
  const yaml = toolsYaml({ 'store-tool': undefined })
  const env = (name: string) => ({ ...s.env, WORKER_CONSUMER_NAME: name, WORKER_CLAIM_IDLE: '2s', WORKER_BATCH_SIZE: '50', WORKER_BLOCK_TIMEOUT: '500ms' })
  let w1StartedAt = Date.now()
  const workers: ServiceProcess[] = await Promise.all(['w1', 'w2', 'w3'].map((n) => startServiceProcess(env(n), yaml, ['--role', 'worker'])))
  const kills: number[] = []
  try {
    // each kill waits until the victim process holds entries it read and has not acked, so both kills cut off
    // work in flight. Entries the killed w1 left pending stay under the consumer name "w1", so only an entry
    // delivered since the running w1 started counts (its idle time is shorter than that process's age):
    // otherwise the second kill could hit a restarted worker that has read nothing yet
    const inFlightOf = async (consumer: string, sinceMs: number) => {
      const rows = (await s.redis.call('XPENDING', s.keys.stream, s.keys.group, '-', '+', EVENTS, consumer)) as [string, string, number, number][]
      const ageMs = Date.now() - sinceMs
      return rows.filter(([, , idleMs]) => Number(idleMs) < ageMs).length
    }
    const inFlightAtKill: number[] = []
    for (const [kill, fraction] of [0.1, 0].entries()) {
      await progressTo(`${fraction * 100}% stored`, () => s.rows(), EVENTS * fraction)
      let held = 0
      await eventually('the running w1 holds unacked entries', async () => (held = await inFlightOf('w1', w1StartedAt)) > 0, 60_000)
      inFlightAtKill.push(held)
      const victim = workers[0]!
      victim.child.kill('SIGKILL')
      assert.is(await victim.exited, 'SIGKILL')
      kills.push(await s.rows())
      w1StartedAt = Date.now()
      workers[0] = await startServiceProcess(env('w1'), yaml, ['--role', 'worker'])
      // the second half goes in once the restarted w1 is up: two workers can store the whole stream while it
      // starts, and the second kill would then find nothing in flight or land after the run
      if (kill === 0) await addEvents(firstHalf, EVENTS)
    }
    assert.ok(kills.every((n) => n < EVENTS), `both kills landed mid-run (stored at the kills: ${kills.join(', ')})`)
    await progressTo('all stored', () => s.rows(), EVENTS)
    assert.is(await s.rows(), EVENTS)
    await eventually('nothing pending', async () => (await s.pending()) === 0, 20_000)
    assert.is(await s.rows('webhook_dlq'), 0)
    assert.is(Number(await s.redis.xlen(s.keys.dlqStream)), 0)
    const distinct = await s.db.db.selectFrom('webhook_events').select((eb) => eb.fn.count<number>('id').distinct().as('n')).executeTakeFirstOrThrow()
    assert.is(Number(distinct.n), EVENTS)
    console.log(`  ${EVENTS} events with two kills (${inFlightAtKill.join(' and ')} entries in flight in w1): ${Date.now() - started} ms`)
  } finally {
    for (const w of workers) w.child.kill('SIGTERM')
    await Promise.all(workers.map((w) => w.exited))
  }
}))

Crash.run()
