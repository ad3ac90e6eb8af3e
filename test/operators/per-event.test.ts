import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { filter, lastValueFrom, map, mergeMap, of, toArray, type OperatorFunction } from 'rxjs'
import type { Envelope } from '../../src/core/envelope.js'
import { PipelineError } from '../../src/core/errors.js'
import { perEvent } from '../../src/operators/per-event.js'
import { envelope } from './helpers.js'

const PerEvent = suite('perEvent')

type Tagged = Envelope & { readonly tag?: string }

PerEvent('a per-event map runs on every envelope and the batch keeps its order', async () => {
  const envs = [envelope({ id: 'a' }), envelope({ id: 'b' }), envelope({ id: 'c' })]
  const out = await lastValueFrom(of(envs).pipe(perEvent(map((env: Envelope): Tagged => ({ ...env, tag: env.message.event.id.toUpperCase() })))))
  assert.equal(out.map((env) => env.tag), ['A', 'B', 'C'])
})

PerEvent('envelopes that finish out of order come back in batch order', async () => {
  const envs = [envelope({ id: 'slow' }), envelope({ id: 'fast' })]
  const op: OperatorFunction<Envelope, Envelope> = mergeMap(async (env) => {
    await new Promise((r) => setTimeout(r, env.message.event.id === 'slow' ? 30 : 1))
    return env
  }, 2)
  const out = await lastValueFrom(of(envs).pipe(perEvent(op)))
  assert.equal(out.map((env) => env.message.event.id), ['slow', 'fast'])
})

PerEvent('skipped envelopes pass unchanged, and a batch of only those never enters the step', async () => {
  let entered = 0
  const op = map((env: Envelope): Envelope => { entered += 1; return { ...env, failure: new PipelineError('permanent', 'X', 'x') } })
  const done = { ...envelope({ id: 'done' }), outcome: 'stored' as const }
  const open = envelope({ id: 'open' })
  const skip = (env: Envelope) => env.outcome !== undefined
  const mixed = await lastValueFrom(of([done, open]).pipe(perEvent(op, { skip })))
  assert.is(entered, 1)
  assert.ok(mixed[0] === done)
  assert.is(mixed[1]?.failure?.code, 'X')
  const only = [done]
  const out = await lastValueFrom(of(only).pipe(perEvent(op, { skip })))
  assert.ok(out === only, 'the same array passes on')
  assert.is(entered, 1)
})

PerEvent('a message the operator drops is released for redelivery and leaves the batch', async () => {
  const keep = envelope({ id: 'keep' })
  const drop = envelope({ id: 'drop' })
  const dropped: string[] = []
  const out = await lastValueFrom(of([keep, drop]).pipe(
    perEvent(filter((env: Envelope) => env.message.event.id !== 'drop'), { onDropped: (m) => dropped.push(m.event.id) })))
  assert.equal(out.map((env) => env.message.event.id), ['keep'])
  assert.is(drop.nacked(), 1)
  assert.is(keep.nacked(), 0)
  assert.equal(dropped, ['drop'])
})

PerEvent('an error of the operator ends the stream', async () => {
  try {
    await lastValueFrom(of([envelope()]).pipe(perEvent(map(() => { throw new Error('bug in op') }))))
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).message, 'bug in op')
  }
})

PerEvent('each batch comes out as one batch', async () => {
  const out = await lastValueFrom(of([envelope(), envelope()], [envelope()]).pipe(perEvent(map((env: Envelope) => env)), toArray()))
  assert.equal(out.map((b) => b.length), [2, 1])
})

PerEvent('shared: one subscription of the operator serves every batch, so its concurrency spans batches', async () => {
  let running = 0
  let most = 0
  let subscriptions = 0
  const op: OperatorFunction<Envelope, Envelope> = (env$) => { subscriptions += 1; return env$.pipe(mergeMap(async (env) => {
    running += 1
    most = Math.max(most, running)
    await new Promise((r) => setTimeout(r, 10))
    running -= 1
    return env
  }, 2)) }
  const out = await lastValueFrom(of([envelope(), envelope(), envelope()], [envelope(), envelope()]).pipe(perEvent(op, { shared: true }), toArray()))
  assert.equal(out.map((b) => b.length), [3, 2])
  assert.is(subscriptions, 1)
  assert.is(most, 2)
})

PerEvent('shared with splitAfterMs: envelopes done go on without a slow one, which follows in a batch of its own', async () => {
  const slow = envelope({ id: 'slow' })
  const fast = [envelope({ id: 'f1' }), envelope({ id: 'f2' })]
  const op = mergeMap(async (env: Envelope) => {
    await new Promise((r) => setTimeout(r, env.message.event.id === 'slow' ? 200 : 1))
    return env
  }, 8)
  const started = Date.now()
  const parts: [string[], number][] = []
  await lastValueFrom(of([slow, ...fast]).pipe(perEvent(op, { shared: true, splitAfterMs: 20 }),
    map((b) => { parts.push([b.map((e) => e.message.event.id), Date.now() - started]) }), toArray()))
  assert.equal(parts.map(([ids]) => ids), [['f1', 'f2'], ['slow']])
  assert.ok(parts[0]![1] < 150, `the fast ones left after ${parts[0]![1]} ms, before the slow one finished`)
})

PerEvent('splitAfterMs without shared is refused when the stage is built', () => {
  try {
    perEvent(map((env: Envelope) => env), { splitAfterMs: 10 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"splitAfterMs"/)
  }
})

PerEvent.run()
