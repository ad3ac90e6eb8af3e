import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { executeCommand } from '../../src/commands/command-log.js'
import { eventually } from '../helpers/events.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess } from '../helpers/service-process.js'

const RunCommands = suite<{ redis: Redis; env: Record<string, string>; stream: string }>('hookstream run --role commands', {} as never)
RunCommands.before(async (ctx) => {
  const redisUrl = (await sharedRedis()).url
  ctx.stream = `cmds-${randomUUID()}`
  ctx.env = { REDIS_URL: redisUrl, DATABASE_URL: await (await sharedPostgres()).createDatabase(), COMMANDS_STREAM: ctx.stream, WORKER_CONSUMER_NAME: 'cmd-1', STREAM_TRIM_INTERVAL: '100ms' }
  ctx.redis = new Redis(redisUrl)
})
RunCommands.after(async (ctx) => { ctx.redis.disconnect() })

const metric = (text: string, name: string) => Number(new RegExp(`^${name}\\{worker="greeter"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN)

RunCommands('runs the --app module\'s workers with per-worker metrics, health on the command log, trimming, and a clean SIGTERM', async ({ redis, env, stream }) => {
  const svc = await startServiceProcess(env, '', ['--role', 'commands', '--app', 'test/cli/fixtures/command-app.ts'])
  try {
    for (const name of ['ada', 'bob', 'cy', 'nobody']) await executeCommand(redis, stream, 'greet', { name })
    let text = ''
    await eventually('metrics counted', async () => {
      text = await (await fetch(`${svc.healthUrl}/metrics`)).text()
      return metric(text, 'webhook_command_handled_total') === 3 && metric(text, 'webhook_command_dead_lettered_total') === 1
    })
    assert.is(metric(text, 'webhook_command_failures_total'), 1)
    assert.is(metric(text, 'webhook_command_handler_duration_seconds_count'), 4)
    const health = await (await fetch(`${svc.healthUrl}/health`)).json() as { components: Record<string, Record<string, unknown>> }
    assert.equal([health.components.worker?.processed, health.components.queue?.groupExists, health.components.queue?.pending], [3, true, 0])
    assert.is(Number(await redis.xlen(`${stream}:dlq`)), 1)
    await eventually('command log trimmed', async () => Number(await redis.xlen(stream)) === 0, 5000)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0, svc.output())
})

RunCommands('an --app module without workers stops startup with a message naming --app and the expected export', async ({ env }) => {
  try {
    await startServiceProcess(env, '', ['--role', 'commands', '--app', 'test/cli/fixtures/does-not-exist.ts'])
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /hookstream run: --app names "test\/cli\/fixtures\/does-not-exist.ts", which cannot be loaded .* default export is an array of defineWorker\(\) workers/)
  }
})

RunCommands('a command log on a Redis that keeps nothing on disk: a warning and /health\'s Redis degraded; REDIS_REQUIRE_DURABLE=true refuses to start', async ({ env }) => {
  const svc = await startServiceProcess(env, '', ['--role', 'commands', '--app', 'test/cli/fixtures/command-app.ts'])
  try {
    const health = await (await fetch(`${svc.healthUrl}/health`)).json() as { components: { redis: { status: string; durability?: string; reasons?: string[] } } }
    assert.equal([health.components.redis.status, health.components.redis.durability], ['degraded', 'none'])
    assert.match((health.components.redis.reasons ?? []).join('; '), /Redis keeps nothing on disk/)
    assert.match(svc.output(), /Redis keeps nothing on disk .*a Redis restart loses/)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0, svc.output())
  try {
    await startServiceProcess({ ...env, REDIS_REQUIRE_DURABLE: 'true' }, '', ['--role', 'commands', '--app', 'test/cli/fixtures/command-app.ts'])
    assert.unreachable('started without a durable Redis')
  } catch (err) {
    assert.match((err as Error).message, /exited early[\s\S]*REDIS_REQUIRE_DURABLE is true, but Redis keeps nothing on disk/)
  }
})

RunCommands.run()
