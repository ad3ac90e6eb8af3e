import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { defineScenario } from '../../bench/define-scenario.js'
import { summarize, type RunRecord } from '../../bench/report.js'
import { formatNumber, globToRegExp, median, range, selectNames } from '../../bench/stats.js'

const Stats = suite('bench stats')

Stats('median is the lower middle of the sorted values, so it is always a measured run', () => {
  assert.is(median([3, 1, 2]), 2)
  assert.is(median([4, 1, 3, 2]), 2)
  assert.equal(range([5, 1, 9]), [1, 9])
})

Stats('globs match whole names only', () => {
  assert.ok(globToRegExp('source-*').test('source-drain-b100'))
  assert.not.ok(globToRegExp('drain').test('source-drain'))
  assert.ok(globToRegExp('bullmq-?0').test('bullmq-50'))
})

const registry = [
  { name: 'raw-insert', baselines: [] },
  { name: 'seeds', baselines: ['raw-insert'] },
  { name: 'pipeline', baselines: ['seeds'] },
  { name: 'other', baselines: [] },
]

Stats('selecting a scenario adds its baselines, and theirs, in registry order', () => {
  assert.equal(selectNames(registry, 'pipeline'), ['raw-insert', 'seeds', 'pipeline'])
  assert.equal(selectNames(registry, undefined).length, 4)
})

Stats('a pattern that matches nothing is an error naming it', () => {
  try {
    selectNames(registry, 'nope*')
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"nope\*" matches no scenario/)
  }
})

Stats('the ratio is the median over the baseline median, checked against the target', () => {
  const base = defineScenario({ name: 'base', description: 'b', isBaseline: true, run: async () => ({ events: 1 }) })
  const s = defineScenario({ name: 's', description: 's', baseline: 'base', targetRatio: 0.8, run: async () => ({ events: 1 }) })
  const rec = (scenario: string, rate: number): RunRecord => ({ scenario, round: 0, events: 10, payload: 'small', seconds: 1, rate, cpuUsPerEvent: 1 })
  const [b, x] = summarize([base, s], [rec('base', 100), rec('s', 70), rec('base', 120), rec('s', 90), rec('base', 80), rec('s', 10)])
  assert.is(b?.median, 100)
  assert.is(x?.median, 70)
  assert.equal([x?.min, x?.max], [10, 90])
  assert.is(x?.ratio?.value, 0.7)
  assert.is(x?.ratio?.met, false)
})

Stats('defineScenario rejects a bad name and a bad default N', () => {
  assert.throws(() => defineScenario({ name: 'Bad Name', description: '', run: async () => ({ events: 0 }) }), /kebab-case/)
  assert.throws(() => defineScenario({ name: 'x', description: '', events: 0, run: async () => ({ events: 0 }) }), /"events"/)
  assert.is(formatNumber(12345.6), '12,346')
})

Stats.run()
