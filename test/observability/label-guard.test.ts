import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { LabelGuard } from '../../src/observability/label-guard.js'

const Guard = suite('LabelGuard')

Guard('lets the first maxValues distinct values through and folds later ones into "other"', () => {
  const guard = new LabelGuard(2)
  assert.equal(['a', 'b', 'c', 'a', 'd', 'b'].map((v) => guard.bound(v)), ['a', 'b', 'other', 'a', 'other', 'b'])
  assert.is(guard.size, 2)
})

Guard('empty values become "unknown"; long or control-character values never take a slot', () => {
  const guard = new LabelGuard(5)
  assert.is(guard.bound(''), 'unknown')
  assert.is(guard.bound(undefined), 'unknown')
  assert.is(guard.bound('x'.repeat(200)), 'other')
  assert.is(guard.bound('a\u0001b'), 'other')
  assert.is(guard.size, 0)
})

Guard('rejects a maxValues below 1, naming the option', () => {
  try {
    new LabelGuard(0)
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"maxValues" must be an integer of at least 1; got 0/)
  }
})

Guard.run()
