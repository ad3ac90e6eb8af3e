import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EventTypeBudget } from '../../src/observability/event-type-budget.js'

const Budget = suite('EventTypeBudget')

Budget('each tool lets its first perTool distinct event types through; one tool spending its budget leaves another its own', () => {
  const budget = new EventTypeBudget({ perTool: 2, total: 100 })
  assert.equal(['a', 'b', 'c', 'a', 'd', 'b'].map((t) => budget.bound('spammed', t)), ['a', 'b', 'other', 'a', 'other', 'b'])
  assert.equal(['c', 'a', 'e'].map((t) => budget.bound('quiet', t)), ['c', 'a', 'other'])
})

Budget('once total pairs are known every new pair folds, while known pairs keep their labels', () => {
  const budget = new EventTypeBudget({ perTool: 10, total: 3 })
  assert.equal([budget.bound('t1', 'a'), budget.bound('t1', 'b'), budget.bound('t2', 'a')], ['a', 'b', 'a'])
  assert.is(budget.bound('t2', 'b'), 'other', 'a fourth pair is over the total although t2 has room')
  assert.is(budget.bound('t3', 'a'), 'other')
  assert.equal([budget.bound('t1', 'b'), budget.bound('t2', 'a')], ['b', 'a'])
})

Budget('empty event types become "unknown"; long or control-character ones fold and never take a slot', () => {
  const budget = new EventTypeBudget({ perTool: 1, total: 10 })
  assert.is(budget.bound('t', ''), 'unknown')
  assert.is(budget.bound('t', undefined), 'unknown')
  assert.is(budget.bound('t', 'x'.repeat(129)), 'other')
  assert.is(budget.bound('t', 'a\u0000b'), 'other')
  assert.is(budget.bound('t', 'push'), 'push', 'the one slot is still free')
})

Budget('defaults to 50 per tool and 1000 in total', () => {
  const budget = new EventTypeBudget()
  assert.equal([budget.perTool, budget.total], [50, 1000])
  const seen = Array.from({ length: 60 }, (_, i) => budget.bound('t', `e${i}`))
  assert.is(seen.filter((t) => t === 'other').length, 10)
})

Budget('rejects a perTool or total below 1, naming the option', () => {
  for (const [options, name] of [[{ perTool: 0 }, 'perTool'], [{ total: 1.5 }, 'total']] as const) {
    try {
      new EventTypeBudget(options)
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, new RegExp(`"${name}" must be an integer of at least 1`))
    }
  }
})

Budget.run()
