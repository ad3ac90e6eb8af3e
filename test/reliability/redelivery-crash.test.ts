import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { makeEvent } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { restartUntilSettled } from '../helpers/crash-loop.js'
import { openSpace, type Space } from './fixture.js'
import { release } from '../helpers/release.js'

const MAX_DELIVERIES = 2
const CRASH_EXIT_CODE = 70 // what crashing-worker-child.ts exits with when it meets the crashing event

interface Ctx { s: Space }
const Redelivery = suite<Ctx>('entries in flight beside one that crashes the worker', {} as Ctx)
Redelivery.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Redelivery.after.each((ctx) => release(ctx, { s: (s) => s.close() }))

/**
 * Queues six events of a storing tool with one that crashes the worker among them (all in one read), then runs
 * worker processes one after the other, the next once the last one died, until one settles every entry. Returns
 * the runs that died, and the ids of the innocent and the crashing events.
 */
async function crashAndRestart(s: Space, consumerOfRun: (run: number) => string) {
  const innocent = Array.from({ length: 6 }, (_, i) => makeEvent({ tool_id: 'store-tool', payload: { i } }))
  const crashing = makeEvent({ tool_id: 'crash-tool' })
  await s.stream.addMany([innocent[0]!, innocent[1]!, crashing, ...innocent.slice(2)])
  const exits = await restartUntilSettled({
    script: 'test/reliability/crashing-worker-child.ts', maxRuns: MAX_DELIVERIES + 2,
    env: (run) => ({ ...s.env, CONSUMER: consumerOfRun(run), MAX_DELIVERIES: String(MAX_DELIVERIES), CLAIM_IDLE_MS: '500' }),
    settled: async () => {
      const group = (await s.stream.info()).groups.find((g) => g.name === s.keys.group)
      return group?.pending === 0 && group.lag === 0
    },
  })
  return { exits, innocent: innocent.map((e) => e.id), crashing: crashing.id }
}

async function assertOnlyTheCrashingOneDeadLettered(s: Space, result: Awaited<ReturnType<typeof crashAndRestart>>) {
  // it took the worker down once per delivery it was allowed, then the guard dead-lettered it unprocessed
  assert.equal(result.exits.map((e) => e.code), Array.from({ length: MAX_DELIVERIES }, () => CRASH_EXIT_CODE),
    `each run died of the crashing event:\n${result.exits.map((e) => e.output).join('\n')}`)
  const dlq = await s.db.db.selectFrom('webhook_dlq').select(['event_id', 'error_code']).execute()
  assert.equal(dlq.map((r) => [r.event_id, r.error_code]), [[result.crashing, 'POISON']])
  const stored = await s.db.db.selectFrom('webhook_events').select('id').execute()
  assert.equal(stored.map((r) => r.id).sort(), [...result.innocent].sort())
  assert.is(Number(await s.redis.xlen(s.keys.dlqStream)), 1)
  assert.is(await s.pending(), 0)
}

Redelivery(`a worker restarted under its name after each crash: only the crashing event is dead-lettered POISON (maxDeliveries ${MAX_DELIVERIES}), the six read beside it are stored once`, withTimeLimit(300_000, async ({ s }) => {
  const result = await crashAndRestart(s, () => 'w1')
  await assertOnlyTheCrashingOneDeadLettered(s, result)
}))

Redelivery(`a new worker taking over a dead one's entries (XAUTOCLAIM) after each crash: only the crashing event is dead-lettered POISON, the six read beside it are stored once`, withTimeLimit(300_000, async ({ s }) => {
  const result = await crashAndRestart(s, (run) => `w${run}`)
  await assertOnlyTheCrashingOneDeadLettered(s, result)
}))

Redelivery.run()
