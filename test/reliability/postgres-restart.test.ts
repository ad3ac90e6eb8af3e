import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedRedis, startPostgres, type TestPostgres } from '../helpers/servers.js'
import { eventually, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { openSpace, post, toolsYaml, type Space } from './fixture.js'
import { release } from '../helpers/release.js'

interface Ctx { pg: TestPostgres; s: Space; svc?: ServiceProcess }
const Restart = suite<Ctx>('PostgreSQL restarted under ingest traffic (service process)', {} as Ctx)
Restart.before(async (ctx) => {
  ctx.pg = await startPostgres()
  ctx.s = await openSpace((await sharedRedis()).url, await ctx.pg.createDatabase())
})
Restart.after(async (ctx) => {
  if (ctx.svc) { ctx.svc.child.kill('SIGKILL'); await ctx.svc.exited }
  await release(ctx, { s: (s) => s.close(), pg: (p) => p.stop() })
})

Restart('PostgreSQL stopped for 3 s mid-run: every accepted event stored once, none dead-lettered, nothing pending', withTimeLimit(180_000, async (ctx) => {
  const { s } = ctx
  ctx.svc = await startServiceProcess({ ...s.env, WORKER_CONSUMER_NAME: 'pg-1', WORKER_BLOCK_TIMEOUT: '500ms' }, toolsYaml({ 'store-tool': undefined }))
  const results: Awaited<ReturnType<typeof post>>[] = []
  let running = true
  const senders = Array.from({ length: 4 }, async () => {
    while (running) { results.push(await post(ctx.svc!.ingestUrl, 'store-tool', 4000)); await sleep(10) }
  })
  await sleep(1500)
  await ctx.pg.stop()
  const atStop = results.length
  await sleep(3000)
  await ctx.pg.start()
  await sleep(2000)
  running = false
  await Promise.all(senders)
  const accepted = results.filter((r) => r.status === 202).map((r) => r.delivery)
  const unexpected = results.filter((r) => r.status !== 202 && !(r.status === 503 && r.retryAfter))
  assert.equal(unexpected.map((r) => [r.status, r.code, r.ms]), [], 'only 202, or 503 with Retry-After')
  assert.ok(results.length - atStop > 20, `traffic went on while PostgreSQL was down (${results.length - atStop} requests)`)
  await progressTo(`${accepted.length} stored`, () => s.rows(), accepted.length)
  const ids = new Set((await s.db.db.selectFrom('webhook_events').select('id').execute()).map((r) => r.id))
  assert.equal(accepted.filter((id) => !ids.has(id)), [], 'every accepted event is stored')
  await eventually('nothing pending', async () => (await s.pending()) === 0, 10_000)
  assert.is(await s.rows('webhook_dlq'), 0, 'no good event dead-lettered')
  assert.is(Number(await s.redis.xlen(s.keys.dlqStream)), 0)
}))

Restart.run()
