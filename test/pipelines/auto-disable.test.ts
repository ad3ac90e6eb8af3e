import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { PipelineError } from '../../src/core/errors.js'
import { parseTool } from '../../src/core/tool.js'
import { ToolRegistry } from '../../src/db/tool-registry.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { destinationAutoDisabler, storeDisabler } from '../../src/pipelines/auto-disable.js'
import type { DeliveryEnvelope } from '../../src/pipelines/delivery.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { failingSinceKey } from '../../src/sources/keys.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, startDeliveryRun, startReceiver, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; closers: (() => Promise<unknown> | unknown)[]; settled: DeliveryEnvelope[] }
const Auto = suite<Ctx>('auto_disable_after', {} as Ctx)

Auto.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  ctx.closers = []
  ctx.settled = []
})
Auto.after.each((ctx) => release(ctx, {
  closers: async (closers) => { for (const close of closers.reverse()) await close() },
  w: (w) => w.close(),
}))

const fast = { initial_interval: '50ms', max_interval: '100ms', multiplier: 2, max_retries: 1000, max_elapsed_time: '1h' }

// the tool in the store (the disabler changes it there) and a delivery pipeline that reads it through a registry
async function startDeliveries(ctx: Ctx, input: Parameters<PipelineWorld['addTool']>[0], extra: { concurrency?: number } = {}) {
  const { w, closers } = ctx
  const store = new ToolStore({ db: w.db.db })
  await store.upsert(parseTool({ secret: 's3cret-value', ...input }), 'test')
  const registry = new ToolRegistry({ store, refreshMs: 60_000 })
  closers.push(() => registry.close())
  w.addTool(input)
  const disabled: string[] = []
  const sink = new ForwardSink({ timeoutMs: 2000 })
  closers.push(() => sink.close())
  const run = startDeliveryRun(w, { forwardSink: sink, tools: registry, ...extra,
    autoDisable: { disable: storeDisabler(store, registry, () => {}), onDisabled: (tool, destination) => { disabled.push(`${tool}/${destination}`) } } })
  ctx.settled = run.settled
  closers.push(() => run.close())
  return { store, disabled }
}

Auto('a destination failing for longer than auto_disable_after is disabled, audited, and its deliveries dead-lettered; the others go on', async (ctx) => {
  const { w, closers } = ctx
  const dead = await startReceiver(() => 500)
  const ok = await startReceiver()
  closers.push(() => dead.close(), () => ok.close())
  const input = { id: 'fan', provider: 'github', processing_mode: 'store', retry_policy: fast, destinations: [
    { id: 'dead', url: dead.url, auto_disable_after: '1s' }, { id: 'ok', url: ok.url },
  ] } as const
  const { store, disabled } = await startDeliveries(ctx, input)
  const started = Date.now()
  const events = await w.enqueue(5, { tool_id: 'fan' })
  w.start()
  await eventually('the dead destination is disabled', () => disabled.length > 0, 30_000)
  assert.ok(Date.now() - started >= 1000, `disabled after ${Date.now() - started} ms, before its 1 s`)
  assert.equal(disabled, ['fan/dead'])
  assert.is((await store.get('fan'))?.destinations?.find((d) => d.id === 'dead')?.enabled, false)
  assert.is((await store.get('fan'))?.destinations?.find((d) => d.id === 'ok')?.enabled, true)
  const audit = await w.db.db.selectFrom('webhook_audit_log').select(['action', 'actor', 'details']).where('action', '=', 'destination_auto_disabled').execute()
  assert.is(audit.length, 1)
  assert.is(audit[0]?.actor, 'auto-disable')
  assert.is((audit[0]?.details as { destination_id?: string }).destination_id, 'dead')
  await eventually('every dead pair is dead-lettered as disabled', async () => {
    const rows = await w.db.db.selectFrom('webhook_dlq').select(['event_id', 'error_code']).execute()
    return rows.length === 5 && rows.every((r) => r.error_code === 'DESTINATION_DISABLED')
  }, 30_000)
  assert.equal(new Set(ok.requests.map((r) => String(r.headers['webhook-id']))), new Set(events.map((e) => e.id)))
  // attempts that were under way when it was disabled leave no failure time behind (it would disable the
  // destination again at its first failure once re-enabled): the mark says "disabled" until they are over
  assert.is(await w.redis.call('GET', failingSinceKey(w.keys, 'fan', 'dead')), 'disabled')
})

Auto('a success clears the failing mark, so a destination that recovers within auto_disable_after stays enabled', async (ctx) => {
  const { w, closers } = ctx
  let n = 0
  // fails for 0.3 s at a time, then answers once, then fails again: never near 5 s of failures in a row
  let failUntil = Date.now() + 300
  const flaky = await startReceiver(() => {
    n += 1
    if (Date.now() < failUntil) return 500
    failUntil = Date.now() + 300
    return 200
  })
  closers.push(() => flaky.close())
  const input = { id: 'fl', provider: 'github', processing_mode: 'store', retry_policy: fast, destinations: [{ id: 'flaky', url: flaky.url, auto_disable_after: '5s' }] } as const
  const { store, disabled } = await startDeliveries(ctx, input, { concurrency: 1 })
  await w.enqueue(4, { tool_id: 'fl' })
  w.start()
  await eventually('all four delivered', () => ctx.settled.filter((e) => e.outcome === 'forwarded').length === 4, 30_000)
  assert.equal(disabled, [])
  assert.is((await store.get('fl'))?.destinations?.[0]?.enabled, true)
  assert.ok(n > 4, `the receiver failed some requests (${n} requests for 4 events)`)
})

Auto('two workers that see the same destination past auto_disable_after at once disable it once', async (ctx) => {
  const { w } = ctx
  const key = failingSinceKey(w.keys, 'two', 'dead')
  await w.redis.call('SET', key, String(Date.now() - 5_000), 'PX', 60_000)
  const calls: string[] = []
  const told: string[] = []
  // one disabler per worker process, as the service runs them; the change takes a while, like a row lock would
  const worker = () => destinationAutoDisabler({ redis: w.redis, keys: w.keys,
    disable: async (tool, destination) => { calls.push(`${tool}/${destination}`); await new Promise((r) => setTimeout(r, 200)); return true },
    onDisabled: (tool, destination) => { told.push(`${tool}/${destination}`) } })
  const failed = { tool: { id: 'two' }, destination: { id: 'dead', autoDisableAfterMs: 1_000 },
    forwardAttempt: { sent: true, destination: 'dead', startedAt: Date.now(), durationMs: 1,
      failure: new PipelineError('transient', 'FORWARD_HTTP_ERROR', 'the destination answered 500') } } as unknown as DeliveryEnvelope
  const [a, b] = [worker(), worker()]
  a(failed); b(failed); a(failed); b(failed)
  await eventually('the destination is disabled', () => told.length > 0, 10_000)
  // every check has had its turn: each one's two script calls and the 200 ms change are long done
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(calls, ['two/dead'])
  assert.equal(told, ['two/dead'])
  assert.is(await w.redis.call('GET', key), 'disabled')
  // a failure reported after the change finds the tombstone and neither marks nor disables
  a(failed)
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(calls, ['two/dead'])
  assert.is(await w.redis.call('GET', key), 'disabled')
})

Auto.run()
