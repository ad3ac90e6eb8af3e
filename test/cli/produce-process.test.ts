import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { streamKeys } from '../../src/sources/keys.js'
import { runCli } from '../helpers/cli-process.js'
import { entryEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { withTimeLimit } from '../helpers/time-limit.js'

interface Ctx { redis: Redis; env: Record<string, string>; dir: string; stream: string }
const Produce = suite<Ctx>('hookstream produce (process)', {} as Ctx)
Produce.before.each(async (ctx) => {
  const redisUrl = (await sharedRedis()).url
  const prefix = `produce-${randomUUID()}:`
  ctx.env = { REDIS_URL: redisUrl, DATABASE_URL: await (await sharedPostgres()).createDatabase(), STREAM_PREFIX: prefix }
  ctx.redis = new Redis(redisUrl)
  ctx.dir = mkdtempSync(join(tmpdir(), 'hookstream-produce-'))
  ctx.stream = streamKeys({ prefix }).stream
})
Produce.after.each((ctx) => release(ctx, { redis: (r) => r.disconnect(), dir: (d) => rmSync(d, { recursive: true, force: true }) }))

const entries = async (redis: Redis, stream: string) =>
  (await redis.xrange(stream, '-', '+')).map(([, fields]) => entryEvent(fields) as unknown as Record<string, unknown>)

Produce('enqueues one event per line, filling in id, timestamp, retry_count, repository and tenant_id', withTimeLimit(180_000, async ({ redis, env, dir, stream }) => {
  const file = join(dir, 'events.ndjson')
  writeFileSync(file, [
    JSON.stringify({ id: 'evt-given', event_type: 'webhook.github.push', tool_id: 'gh', repository: 'acme/api', tenant_id: 'acme', payload: { n: 1 } }),
    '',
    JSON.stringify({ event_type: 'webhook.gitlab.push', tool_id: 'gl', payload: { n: 2 } }),
  ].join('\n'))
  const r = await runCli(['produce', '--file', file], env)
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, `enqueued 2 events on ${stream}`)
  const [first, second] = await entries(redis, stream)
  assert.is((await entries(redis, stream)).length, 2)
  assert.equal([first!.id, first!.repository, first!.tenant_id, first!.payload], ['evt-given', 'acme/api', 'acme', { n: 1 }])
  assert.match(String(second!.id), /^[0-9a-f-]{36}$/)
  assert.equal([second!.repository, second!.tenant_id, second!.retry_count], ['', 'default', 0])
  assert.ok(Math.abs(Date.parse(String(second!.timestamp)) - Date.now()) < 5 * 60_000, `timestamp ${second!.timestamp} is now`)
}))

Produce('a line that is not a valid event stops the command, naming the line, with nothing of its chunk enqueued', withTimeLimit(180_000, async ({ redis, env, dir, stream }) => {
  const file = join(dir, 'bad.ndjson')
  writeFileSync(file, [
    JSON.stringify({ event_type: 'webhook.github.push', tool_id: 'gh', payload: {} }),
    JSON.stringify({ event_type: 'webhook.github.push', payload: {} }),
  ].join('\n'))
  const bad = await runCli(['produce', '--file', file], env)
  assert.is(bad.code, 1)
  assert.match(bad.stderr, `${file} line 2`)
  assert.match(bad.stderr, 'tool_id')
  assert.is(Number(await redis.xlen(stream)), 0)
  writeFileSync(file, '{"event_type": "x", "tool_id": ')
  const notJson = await runCli(['produce', '--file', file], env)
  assert.is(notJson.code, 1)
  assert.match(notJson.stderr, `${file} line 1 is not JSON`)
}))

Produce('without --file it exits 2 and says what is required', withTimeLimit(180_000, async ({ env }) => {
  const r = await runCli(['produce'], env)
  assert.is(r.code, 2)
  assert.match(r.stderr, '--file <events.ndjson> is required')
}))

Produce.run()
