import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { executeCommand } from '../../src/commands/command-log.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { sharedRedis } from '../helpers/servers.js'
import { restartUntilSettled } from '../helpers/crash-loop.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { release } from '../helpers/release.js'
import { deadLetters } from './command-helpers.js'

const MAX_DELIVERIES = 2
const CRASH_EXIT_CODE = 70 // what crashing-command-child.ts exits with when it meets the crashing job

interface Ctx { redis: Redis; url: string }
const Crash = suite<Ctx>('a command that crashes its worker process', {} as Ctx)
Crash.before(async (ctx) => {
  ctx.url = (await sharedRedis()).url
  ctx.redis = new Redis(ctx.url)
})
Crash.after((ctx) => release(ctx, { redis: (r) => r.quit() }))

/**
 * Appends six jobs with one that crashes the worker among them (read together: prefetch 8), then runs worker
 * processes one after the other, the next once the last one died, until one settles every job. Returns the runs
 * that died, the DLQ entries and how often each innocent job was done.
 */
async function crashAndRestart(redis: Redis, url: string, consumerOfRun: (run: number) => string) {
  const stream = `test-commands-${randomUUID()}`
  for (const n of [0, 1]) await executeCommand(redis, stream, 'job', { n })
  const crashingId = await executeCommand(redis, stream, 'job', { n: 99, crash: true })
  for (const n of [2, 3, 4, 5]) await executeCommand(redis, stream, 'job', { n })
  const client = new StreamClient({ redis, stream })
  const exits = await restartUntilSettled({
    script: 'test/commands/crashing-command-child.ts', maxRuns: MAX_DELIVERIES + 2,
    env: (run) => ({ REDIS_URL: url, COMMAND_STREAM: stream, CONSUMER: consumerOfRun(run), MAX_DELIVERIES: String(MAX_DELIVERIES), CLAIM_IDLE_MS: '500' }),
    settled: async () => {
      const group = (await client.info()).groups.find((g) => g.name === 'jobs')
      return group?.pending === 0 && group.lag === 0
    },
  })
  return { exits, crashingId, dlq: await deadLetters(redis, `${stream}:dlq`), done: await redis.hgetall(`${stream}:done`) }
}

function assertOnlyTheCrashingOneDeadLettered(result: Awaited<ReturnType<typeof crashAndRestart>>) {
  // it took the worker down once per delivery it was allowed, then was dead-lettered before its handler ran
  assert.equal(result.exits.map((e) => e.code), Array.from({ length: MAX_DELIVERIES }, () => CRASH_EXIT_CODE),
    `each run died of the crashing job:\n${result.exits.map((e) => e.output).join('\n')}`)
  assert.equal(result.dlq.map((d) => [d.stream_id, d.error_code]), [[result.crashingId, 'COMMAND_MAX_DELIVERIES']])
  assert.equal(result.done, { 0: '1', 1: '1', 2: '1', 3: '1', 4: '1', 5: '1' })
}

Crash(`a worker restarted under its name after each crash: only the crashing command is dead-lettered COMMAND_MAX_DELIVERIES (maxDeliveries ${MAX_DELIVERIES}), the six read with it run once`, withTimeLimit(300_000, async ({ redis, url }) => {
  assertOnlyTheCrashingOneDeadLettered(await crashAndRestart(redis, url, () => 'c1'))
}))

Crash(`a new process taking over a dead one's commands (XAUTOCLAIM) after each crash: only the crashing command is dead-lettered, the six read with it run once`, withTimeLimit(300_000, async ({ redis, url }) => {
  assertOnlyTheCrashingOneDeadLettered(await crashAndRestart(redis, url, (run) => `c${run}`))
}))

Crash.run()
