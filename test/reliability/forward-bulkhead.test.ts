import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { startReceiver } from '../helpers/pipeline.js'
import { startServiceProcess } from '../helpers/service-process.js'
import { FORWARD_SECRET, openSpace, SECRET, type Space } from './fixture.js'
import { release } from '../helpers/release.js'
import { withTimeLimit } from '../helpers/time-limit.js'

const Bulkhead = suite<{ s: Space }>('a hanging forward destination (service process)', {} as { s: Space })
Bulkhead.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Bulkhead.after.each((ctx) => release(ctx, { s: (s) => s.close() }))

/** A receiver that reads each request and never answers. */
async function startHangingReceiver() {
  const sockets = new Set<Socket>()
  const open: IncomingMessage[] = []
  let total = 0
  const server = createServer((req) => { total++; open.push(req); req.resume() })
  server.on('connection', (sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    total: () => total,
    openNow: () => open.filter((r) => !r.socket.destroyed).length,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }),
  }
}

async function hangingVersusGood(s: Space, STUCK: number, withinMs = 8000): Promise<void> {
  const hanging = await startHangingReceiver()
  const good = await startReceiver()
  const retry = '{ initial_interval: 100ms, max_interval: 200ms, multiplier: 2, max_retries: 20, max_elapsed_time: 10m }'
  const yaml = 'tools:\n' +
    `  - { id: stuck, provider: github, secret: ${SECRET}, processing_mode: store_and_forward, forward_url: "${hanging.url}", forward_secret: "${FORWARD_SECRET}", retry_policy: ${retry} }\n` +
    `  - { id: fine, provider: github, secret: ${SECRET}, processing_mode: store_and_forward, forward_url: "${good.url}", forward_secret: "${FORWARD_SECRET}" }\n`
  // the stuck tool's events come first, so they reach the forward step before any of the good ones
  await s.stream.addMany(Array.from({ length: STUCK }, () => makeEvent({ tool_id: 'stuck' })))
  await s.stream.addMany(Array.from({ length: 300 }, () => makeEvent({ tool_id: 'fine' })))
  // FORWARD_ALLOW_PRIVATE: the service refuses loopback destinations by default once the SSRF guard is wired
  const svc = await startServiceProcess({ ...s.env, WORKER_CONSUMER_NAME: 'bh-1', WORKER_BLOCK_TIMEOUT: '500ms', FORWARD_ALLOW_PRIVATE: '127.0.0.1/32' }, yaml, ['--role', 'worker'])
  try {
    const started = Date.now()
    const served = await eventually('all 300', () => good.requests.length >= 300, withinMs).then(() => true, () => false)
    assert.ok(served, `the good destination got ${good.requests.length} of 300 within ${withinMs / 1000} s while the hanging one holds ${hanging.openNow()} requests (${STUCK} stuck events)`)
    const goodMs = Date.now() - started
    assert.ok(hanging.openNow() <= 10, `at most perDestinationConcurrency (10) requests held by the hanging destination; ${hanging.openNow()}`)
    const firstWave = hanging.total()
    assert.ok(firstWave > 0 && firstWave <= 10, `first wave ${firstWave}`)
    // the forward timeout (10 s) fires: those requests fail as DESTINATION_TIMEOUT, which opens the destination's
    // circuit breaker; they are retried once its cool-down (10 s) lets a half-open probe through
    await eventually('timed-out requests are retried', () => hanging.total() > firstWave, 40_000)
    const forwarded = () => s.db.db.selectFrom('webhook_events').select('tool_id').where('forwarded_at', 'is not', null).execute()
    await eventually('300 marked forwarded', async () => (await forwarded()).filter((r) => r.tool_id === 'fine').length === 300)
    assert.is((await forwarded()).filter((r) => r.tool_id === 'stuck').length, 0)
    console.log(`  good destination served in ${goodMs} ms; hanging one retried after ${Date.now() - started} ms`)
  } finally {
    svc.child.kill('SIGKILL')
    await svc.exited
    await hanging.close()
    await good.close()
  }
}

Bulkhead('a destination that never answers times out (10 s) and is retried; with 12 of its events in flight another tool\'s destination gets all 300', withTimeLimit(180_000, async ({ s }) => {
  await hangingVersusGood(s, 12)
}))

// events that cannot get a slot of the hanging origin within slotWaitMs are parked (DESTINATION_BUSY), so
// they stop holding the forward step's concurrency and the source's credit
Bulkhead('100 events for a hanging destination do not starve another tool\'s destination', withTimeLimit(180_000, async ({ s }) => {
  await hangingVersusGood(s, 100)
}))

Bulkhead.run()
