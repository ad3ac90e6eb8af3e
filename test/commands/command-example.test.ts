import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { runExample } from '../../examples/command-worker.js'
import { startRedis, type TestRedis } from '../helpers/servers.js'
import { deadLetters } from './command-helpers.js'

const Example = suite<{ server?: TestRedis; redis?: Redis }>('examples/command-worker.ts', {})
Example.before(async (ctx) => {
  ctx.server = await startRedis()
  ctx.redis = new Redis(ctx.server.url)
})
Example.after(async (ctx) => {
  ctx.redis?.disconnect()
  await ctx.server?.stop()
})

Example('the README example runs: features are stored, an unknown update is dead-lettered, audit reports', async ({ redis }) => {
  const lines: string[] = []
  const { info, features, dlqStream } = await runExample(redis!, { stream: `example-${randomUUID()}`, report: (l) => lines.push(l) })
  assert.equal(features, [{ id: 'f-1', title: 'Dark mode (beta)' }, { id: 'f-2', title: 'Export to CSV' }])
  assert.equal(info.map((w) => [w.name, w.handled, w.failed, w.status]), [['features', 3, 1, 'stopped'], ['audit', 4, 0, 'stopped']])
  const dlq = await deadLetters(redis!, dlqStream)
  assert.equal(dlq.map((d) => [d.worker, d.command, d.error_code]), [['features', 'feature/update', 'FEATURE_UNKNOWN']])
  assert.ok(lines.some((l) => /^features: handled 3, dead-lettered 1/.test(l)))
})

Example.run()
