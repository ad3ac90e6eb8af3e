import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EMPTY, from, lastValueFrom, map, mergeMap, Subject, timer, toArray } from 'rxjs'
import { orderByKey } from '../../src/operators/order-by-key.js'
import { spyOnTimers } from '../helpers/timer-spy.js'

interface Item { readonly key: string; readonly seq: number }
const items = (keys: number, perKey: number): Item[] => {
  const out: Item[] = []
  for (let s = 0; s < perKey; s++) for (let k = 0; k < keys; k++) out.push({ key: `k${k}`, seq: s })
  return out
}
// a step that finishes items in random order: later items often overtake earlier ones
const shuffling = (maxDelayMs: number) => mergeMap((item: Item) => timer(Math.floor(Math.random() * maxDelayMs)).pipe(map(() => item)), 1000)
const inOrderPerKey = (out: readonly Item[]) => {
  const last = new Map<string, number>()
  for (const item of out) {
    if ((last.get(item.key) ?? -1) >= item.seq) return false
    last.set(item.key, item.seq)
  }
  return true
}

const OrderByKey = suite('orderByKey')

OrderByKey('an empty source completes empty', async () => {
  assert.equal(await lastValueFrom(EMPTY.pipe(orderByKey({ key: (i: Item) => i.key }, shuffling(5)), toArray())), [])
})

OrderByKey('one item passes through', async () => {
  const out = await lastValueFrom(from([{ key: 'a', seq: 0 }]).pipe(orderByKey({ key: (i: Item) => i.key }, shuffling(5)), toArray()))
  assert.equal(out, [{ key: 'a', seq: 0 }])
})

OrderByKey('a reordering step without the operator does reorder (the test can fail)', async () => {
  const out = await lastValueFrom(from(items(5, 40)).pipe(shuffling(10), toArray()))
  assert.is(out.length, 200)
  assert.not.ok(inOrderPerKey(out))
})

OrderByKey('items of one key leave in arrival order; all 2,000 come out once', async () => {
  const out = await lastValueFrom(from(items(20, 100)).pipe(orderByKey({ key: (i: Item) => i.key }, shuffling(3)), toArray()))
  assert.is(out.length, 2000)
  assert.is(new Set(out).size, 2000)
  assert.ok(inOrderPerKey(out))
})

OrderByKey('keys run in parallel: 20 keys × 10 items of 20 ms take about 10 steps, not 200', async () => {
  const started = Date.now()
  const slow = mergeMap((item: Item) => timer(20).pipe(map(() => item)), 1000)
  const out = await lastValueFrom(from(items(20, 10)).pipe(orderByKey({ key: (i: Item) => i.key }, slow), toArray()))
  const tookMs = Date.now() - started
  assert.is(out.length, 200)
  assert.ok(inOrderPerKey(out))
  assert.ok(tookMs < 1500, `took ${tookMs} ms; sequential would be ≥ 4000`)
  assert.ok(tookMs >= 190, `took ${tookMs} ms; per-key sequencing needs ≥ 10 × 20 ms`)
})

OrderByKey('at most one item per key is inside the step at a time, and idle keys are released', async () => {
  const inside = new Map<string, number>()
  let maxInside = 0
  const step = mergeMap((item: Item) => {
    const n = (inside.get(item.key) ?? 0) + 1
    inside.set(item.key, n)
    maxInside = Math.max(maxInside, n)
    return timer(1).pipe(map(() => { inside.set(item.key, (inside.get(item.key) ?? 1) - 1); return item }))
  }, 1000)
  const out = await lastValueFrom(from(items(50, 20)).pipe(orderByKey({ key: (i: Item) => i.key }, step), toArray()))
  assert.is(out.length, 1000)
  assert.is(maxInside, 1)
})

OrderByKey('a synchronous step over 100,000 items of one key does not overflow the stack', async () => {
  const out = await lastValueFrom(from(items(1, 100_000)).pipe(orderByKey({ key: (i: Item) => i.key }, map((i: Item) => i)), toArray()))
  assert.is(out.length, 100_000)
  assert.ok(inOrderPerKey(out))
})

OrderByKey('a key function that throws is reported and the item still passes', async () => {
  const errors: unknown[] = []
  const key = (i: Item) => { if (i.key === 'bad') throw new Error('no key'); return i.key }
  const input = [{ key: 'bad', seq: 0 }, { key: 'a', seq: 0 }, { key: 'bad', seq: 1 }]
  const out = await lastValueFrom(from(input).pipe(orderByKey({ key, onKeyError: (e) => errors.push(e) }, shuffling(3)), toArray()))
  assert.is(out.length, 3)
  assert.ok(errors.length >= 2)
})

OrderByKey('errors of the step and of the source pass through', async () => {
  try {
    await lastValueFrom(from(items(2, 2)).pipe(orderByKey({ key: (i: Item) => i.key }, map(() => { throw new Error('step broke') })), toArray()))
    assert.unreachable()
  } catch (err) { assert.match((err as Error).message, /step broke/) }
  const source = new Subject<Item>()
  const result = lastValueFrom(source.pipe(orderByKey({ key: (i: Item) => i.key }, shuffling(1)), toArray()))
  source.error(new Error('source broke'))
  try { await result; assert.unreachable() } catch (err) { assert.match((err as Error).message, /source broke/) }
})

OrderByKey('unsubscribing stops the step: no timers keep running', async () => {
  const timers = spyOnTimers()
  try {
    let emitted = 0
    const sub = from(items(5, 5)).pipe(orderByKey({ key: (i: Item) => i.key }, mergeMap((i: Item) => timer(30).pipe(map(() => i)), 100)))
      .subscribe(() => { emitted += 1 })
    assert.ok(timers.pending() >= 5, `one timer per key is running (${timers.pending()})`)
    sub.unsubscribe()
    assert.is(timers.pending(), 0, 'unsubscribe cleared every timer of the step')
    assert.is(emitted, 0)
  } finally {
    timers.restore()
  }
})

OrderByKey('options are checked when the operator is built', () => {
  try { orderByKey({ key: undefined as never }, map((x) => x)); assert.unreachable() } catch (err) { assert.match((err as Error).message, /"key" must be a function/) }
})

OrderByKey.run()
