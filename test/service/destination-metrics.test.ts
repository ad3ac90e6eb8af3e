import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseTool } from '../../src/core/tool.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { parseExposition, sampleTotal } from '../observability/exposition.js'
import { openSpace, SECRET, type Space } from '../reliability/fixture.js'

interface Ctx { s: Space; svc?: ServiceProcess; receivers: (() => Promise<void>)[] }
const Metrics = suite<Ctx>('hookstream run: destination metrics', {} as Ctx)
Metrics.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()); ctx.receivers = [] })
Metrics.after.each((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  receivers: async (closers) => { for (const close of closers) await close() },
  s: (s) => s.close(),
}))

// a destination answering every request with `status`
async function receiver(ctx: Ctx, status: number): Promise<string> {
  const server = createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(status).end()) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ctx.receivers.push(() => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`
}

Metrics('two tools\' destinations named "ci" are counted apart, as <tool id>/<destination id>, also when one is auto-disabled', withTimeLimit(180_000, async (ctx) => {
  const store = new ToolStore({ db: ctx.s.db.db })
  const retry = { initial_interval: '50ms', max_interval: '100ms', multiplier: 2, max_retries: 1000, max_elapsed_time: '1h' }
  await store.upsert(parseTool({ id: 'alpha', provider: 'github', secret: SECRET, retry_policy: retry, destinations: [{ id: 'ci', url: await receiver(ctx, 200) }] }), 'test')
  await store.upsert(parseTool({ id: 'beta', provider: 'github', secret: SECRET, retry_policy: retry,
    destinations: [{ id: 'ci', url: await receiver(ctx, 503), auto_disable_after: '1s' }] }), 'test')
  ctx.svc = await startServiceProcess({ ...ctx.s.env, FORWARD_ALLOW_PRIVATE: '127.0.0.1/32', FORWARD_BREAKER_FAILURES: '10000', WORKER_BLOCK_TIMEOUT: '300ms' }, 'tools: []\n')
  await ctx.s.stream.add(makeEvent({ tool_id: 'alpha' }))
  await ctx.s.stream.add(makeEvent({ tool_id: 'beta' }))
  const samples = async () => parseExposition(await (await fetch(`${ctx.svc!.healthUrl}/metrics`)).text())
  await eventually('beta/ci auto-disabled', async () => sampleTotal(await samples(), 'webhook_destinations_auto_disabled_total') >= 1, 60_000)
  const s = await samples()
  assert.is(sampleTotal(s, 'webhook_destinations_auto_disabled_total', { destination: 'beta/ci' }), 1)
  assert.is(sampleTotal(s, 'webhook_forward_attempts_total', { destination: 'alpha/ci', outcome: 'success' }), 1)
  assert.ok(sampleTotal(s, 'webhook_forward_attempts_total', { destination: 'beta/ci', outcome: 'transient' }) >= 2)
  assert.is(sampleTotal(s, 'webhook_forward_attempts_total', { destination: 'ci' }), 0, 'no series mixes the two tools')
}))

Metrics.run()
