import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EMPTY, lastValueFrom, of, Subject, toArray } from 'rxjs'
import { batch } from '../../src/operators/batch.js'
import { eventually } from '../helpers/events.js'
import { spyOnTimers } from '../helpers/timer-spy.js'

const Batch = suite('batch')

Batch('an empty source completes with no batch', async () => {
  assert.equal(await lastValueFrom(EMPTY.pipe(batch(), toArray())), [])
})

Batch('one burst becomes one batch; size closes batches early', async () => {
  assert.equal(await lastValueFrom(of(1, 2, 3, 4, 5).pipe(batch({ maxSize: 2 }), toArray())), [[1, 2], [3, 4], [5]])
})

Batch('items of separate event-loop turns land in separate batches', async () => {
  const s = new Subject<number>()
  const out: number[][] = []
  s.pipe(batch()).subscribe((b) => out.push(b))
  s.next(1); s.next(2)
  await new Promise((r) => setImmediate(r))
  s.next(3)
  await new Promise((r) => setImmediate(r))
  assert.equal(out, [[1, 2], [3]])
})

Batch('maxWaitMs holds a batch open for later items', async () => {
  const s = new Subject<number>()
  const out: number[][] = []
  // maxWaitMs 1000 and a 20 ms gap: a busy machine's late timer stays far inside the window
  s.pipe(batch({ maxWaitMs: 1000 })).subscribe((b) => out.push(b))
  s.next(1)
  await new Promise((r) => setTimeout(r, 20))
  s.next(2)
  assert.equal(out, [], 'the batch is still open')
  await eventually('the batch closed', () => out.length > 0, 5000)
  assert.equal(out, [[1, 2]])
})

Batch('with waitsFor, only a batch holding such an item waits maxWaitMs; others close when their burst ends', async () => {
  const s = new Subject<number>()
  const out: number[][] = []
  // odd numbers wait (as forwarded events do in markForwarded), even ones do not
  // maxWaitMs 1000 and a 20 ms gap: a busy machine's late timer stays far inside the window
  const sub = s.pipe(batch({ maxWaitMs: 1000, waitsFor: (n) => n % 2 === 1 })).subscribe((b) => out.push(b))
  s.next(2); s.next(4)
  await new Promise((r) => setImmediate(r))
  assert.equal(out, [[2, 4]], 'a burst without a waiting item closed at its end')
  s.next(6)
  s.next(1) // joins the open burst and makes it wait
  await new Promise((r) => setTimeout(r, 20))
  s.next(3)
  s.next(8)
  assert.equal(out, [[2, 4]], 'the waiting batch is still open')
  await eventually('the waiting batch closed', () => out.length > 1, 5000)
  assert.equal(out, [[2, 4], [6, 1, 3, 8]], 'items that came within maxWaitMs of the first waiting one share its batch')
  sub.unsubscribe()
})

Batch('unsubscribing clears the pending timer, so nothing is emitted later', async () => {
  for (const maxWaitMs of [30, 0]) {
    const timers = spyOnTimers()
    try {
      const s = new Subject<number>()
      const out: number[][] = []
      const sub = s.pipe(batch({ maxWaitMs })).subscribe((b) => out.push(b))
      s.next(1)
      assert.is(timers.pending(), 1, `maxWaitMs ${maxWaitMs}: a batch is open and its timer runs`)
      sub.unsubscribe()
      assert.is(timers.pending(), 0, `maxWaitMs ${maxWaitMs}: unsubscribe cleared the timer`)
      assert.equal(out, [])
    } finally {
      timers.restore()
    }
  }
})

Batch('rejects bad options naming the option', () => {
  assert.throws(() => batch({ maxSize: 0 }), /"maxSize" must be an integer of at least 1; got 0/)
  assert.throws(() => batch({ maxWaitMs: -1 }), /"maxWaitMs" must be a number of at least 0/)
})

Batch.run()
