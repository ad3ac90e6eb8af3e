import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Registry } from 'prom-client'
import { LabelGuard } from '../../src/observability/label-guard.js'
import { PreaggregatedHistogram, preaggregatedCounter, SeriesMap } from '../../src/observability/series.js'
import { parseExposition } from './exposition.js'

const Series = suite('pre-aggregated series')

Series('SeriesMap returns one series per label combination and never keys an unadmitted value', () => {
  let made = 0
  const guard = new LabelGuard(2)
  const map = new SeriesMap([guard, undefined], (values) => ({ values, n: ++made }))
  assert.is(map.get('a', 'x'), map.get('a', 'x'))
  assert.is.not(map.get('a', 'x'), map.get('a', 'y'))
  map.get('b', 'x')
  const folded = map.get('c', 'x')
  assert.equal(folded.values, ['other', 'x'])
  assert.is(map.get('d', 'x'), folded)
  assert.is(map.all.length, 4)
  assert.is(made, 4)
})

Series('a pre-aggregated counter reports what was counted since the last scrape, once', async () => {
  const registry = new Registry()
  const c = preaggregatedCounter(registry, 'x_total', 'x', ['a'], [undefined])
  c.get('one').value += 3
  const first = parseExposition(await registry.metrics())
  c.get('one').value++
  c.get('two').value++
  const second = parseExposition(await registry.metrics())
  const third = parseExposition(await registry.metrics())
  assert.is(first.get('x_total{a="one"}'), 3)
  assert.is(second.get('x_total{a="one"}'), 4)
  assert.is(second.get('x_total{a="two"}'), 1)
  assert.equal(third, second)
})

Series('a pre-aggregated histogram renders cumulative buckets, +Inf, sum and count; bad values are ignored', async () => {
  const registry = new Registry()
  const h = new PreaggregatedHistogram(registry, { name: 'd_seconds', help: 'd', labelNames: ['s'], guards: [undefined], buckets: [1, 0.1] })
  const s = h.series.get('ok')
  for (const v of [0.05, 0.1, 0.5, 5, -1, Number.NaN, Number.POSITIVE_INFINITY]) h.observe(s, v)
  const text = await registry.metrics()
  assert.match(text, /# TYPE d_seconds histogram/)
  const m = parseExposition(text)
  assert.is(m.get('d_seconds_bucket{s="ok",le="0.1"}'), 2)
  assert.is(m.get('d_seconds_bucket{s="ok",le="1"}'), 3)
  assert.is(m.get('d_seconds_bucket{s="ok",le="+Inf"}'), 4)
  assert.is(m.get('d_seconds_count{s="ok"}'), 4)
  assert.ok(Math.abs((m.get('d_seconds_sum{s="ok"}') ?? 0) - 5.65) < 1e-9)
  registry.resetMetrics()
  assert.is(parseExposition(await registry.metrics()).get('d_seconds_count{s="ok"}'), 0)
})

Series.run()
