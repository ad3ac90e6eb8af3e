import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { streamKeys } from '../../src/sources/keys.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const EVENTS = 400

function startChild(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/run-worker.ts'], {
    cwd: process.cwd(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout?.on('data', (d) => { out += d })
  child.stderr?.on('data', (d) => { out += d })
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  return { child, exited, output: () => out }
}

const Example = suite<{ redis: Redis; redisUrl: string; databaseUrl: string }>('examples/run-worker', {} as never)
Example.before(async (ctx) => {
  ctx.redisUrl = (await sharedRedis()).url
  ctx.databaseUrl = await (await sharedPostgres()).createDatabase()
  ctx.redis = new Redis(ctx.redisUrl)
})
Example.after((ctx) => release(ctx, { redis: (r) => r.disconnect() }))

Example('the example worker killed -9 mid-run and restarted processes every event once, leaves nothing pending and dead-letters nothing', async ({ redis, redisUrl, databaseUrl }) => {
  const prefix = `rw-${randomUUID()}:`
  const keys = streamKeys({ prefix })
  const stream = new StreamClient({ redis, stream: keys.stream })
  await stream.addMany(Array.from({ length: EVENTS }, () => makeEvent()))
  const hash = `${prefix}example:pushes`
  const env = { REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, EXAMPLE_PREFIX: prefix, EXAMPLE_WORK_MS: '20' }
  const first = startChild(env)
  let second: ReturnType<typeof startChild> | undefined
  try {
    await eventually('a quarter processed', async () => (await redis.hlen(hash)) >= EVENTS / 4, 60_000)
    first.child.kill('SIGKILL')
    assert.is(await first.exited, 'SIGKILL')
    const atKill = await redis.hlen(hash)
    assert.ok(atKill < EVENTS, `the kill landed mid-run (${atKill} of ${EVENTS} processed)`)
    const pendingAtKill = (await stream.info()).groups.find((g) => g.name === keys.group)?.pending ?? 0
    assert.ok(pendingAtKill > 0, `the killed worker left entries pending (${pendingAtKill})`)

    second = startChild(env)
    await eventually('every event processed', async () => (await redis.hlen(hash)) === EVENTS, 90_000)
    await eventually('nothing pending', async () => ((await stream.info()).groups.find((g) => g.name === keys.group)?.pending ?? -1) === 0, 20_000)
    assert.is(await redis.xlen(keys.dlqStream), 0)
    second.child.kill('SIGTERM')
    assert.is(await second.exited, 0, second.output())
    assert.match(second.output(), /example worker stopped/)
  } finally {
    first.child.kill('SIGKILL')
    second?.child.kill('SIGKILL')
  }
})

Example.run()
