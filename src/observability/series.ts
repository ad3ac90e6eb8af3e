import { Counter, type Metric, type Registry } from 'prom-client'
import type { LabelGuard } from './label-guard.js'

/**
 * The series of one metric, found by label values through nested Maps (no key string is built per call). A lookup
 * with raw values hits when every value was admitted before; otherwise each value goes through its label's
 * LabelGuard (when it has one) and the series of the bounded values is used, so unadmitted values never become keys.
 *
 * @example
 * const series = new SeriesMap([eventTypeGuard, toolGuard], (labels) => ({ labels, value: 0 }))
 * series.get('webhook.github.push', 'gh-main').value++
 */
export class SeriesMap<S> {
  readonly #root = new Map<string, unknown>()
  readonly all: S[] = []

  constructor(
    private readonly guards: readonly (LabelGuard | undefined)[],
    private readonly make: (values: readonly string[]) => S,
  ) {
    if (guards.length < 1 || guards.length > 3) throw new RangeError('SeriesMap: between 1 and 3 labels are supported')
  }

  /** The series for these label values (as many as guards were given), created on first use. */
  get(a: string, b = '', c = ''): S {
    const found = this.#find(a, b, c)
    if (found !== undefined) return found
    const g = this.guards
    const bounded = [g[0] ? g[0].bound(a) : a, g[1] ? g[1].bound(b) : b, g[2] ? g[2].bound(c) : c].slice(0, g.length)
    return this.#find(bounded[0] as string, bounded[1] ?? '', bounded[2] ?? '') ?? this.#create(bounded)
  }

  #find(a: string, b: string, c: string): S | undefined {
    const depth = this.guards.length
    const l1 = this.#root.get(a)
    if (depth === 1 || l1 === undefined) return l1 as S | undefined
    const l2 = (l1 as Map<string, unknown>).get(b)
    if (depth === 2 || l2 === undefined) return l2 as S | undefined
    return (l2 as Map<string, S>).get(c)
  }

  #create(values: readonly string[]): S {
    const series = this.make(values)
    let level = this.#root
    values.forEach((v, i) => {
      if (i === values.length - 1) { level.set(v, series); return }
      let next = level.get(v) as Map<string, unknown> | undefined
      if (!next) level.set(v, (next = new Map()))
      level = next
    })
    this.all.push(series)
    return series
  }
}

/** One counter series: increment `value`; the registry sees it at the next scrape. */
export interface CounterSeries { value: number; flushed: number; readonly labels: Record<string, string> }

/**
 * A prom-client Counter fed from plain numbers: the hot path does `series.value++`, and the counter's collect
 * hook adds what was counted since the last scrape.
 *
 * @example
 * const received = preaggregatedCounter(registry, 'webhook_events_received_total', 'Events received.', ['event_type', 'tool_id'], [types, tools])
 * received.get('webhook.github.push', 'gh-main').value++
 */
export function preaggregatedCounter(registry: Registry, name: string, help: string, labelNames: readonly string[],
  guards: readonly (LabelGuard | undefined)[]): SeriesMap<CounterSeries> {
  const series = new SeriesMap<CounterSeries>(guards, (values) => ({
    value: 0, flushed: 0, labels: Object.fromEntries(labelNames.map((n, i) => [n, values[i] as string])),
  }))
  new Counter({
    name, help, labelNames, registers: [registry],
    collect() {
      for (const s of series.all) {
        if (s.value === s.flushed) continue
        this.inc(s.labels, s.value - s.flushed)
        s.flushed = s.value
      }
    },
  })
  return series
}

/** One histogram series: call `observe`. */
export interface HistogramSeries { readonly labels: Record<string, string>; readonly counts: number[]; sum: number; count: number }

/**
 * A histogram that counts observations into plain arrays (no hashing per call) and renders them at scrape time.
 * It registers itself on `registry` like a prom-client Histogram.
 *
 * @example
 * const duration = new PreaggregatedHistogram(registry, { name: 'webhook_event_processing_duration_seconds', … })
 * duration.observe(duration.series.get('webhook.github.push', 'gh-main', 'stored'), 0.012)
 */
export class PreaggregatedHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  readonly series: SeriesMap<HistogramSeries>
  readonly #buckets: readonly number[]

  constructor(registry: Registry, options: { name: string; help: string; labelNames: readonly string[];
    guards: readonly (LabelGuard | undefined)[]; buckets: readonly number[] }) {
    this.name = options.name
    this.help = options.help
    this.#buckets = [...options.buckets].sort((x, y) => x - y)
    const { labelNames } = options
    this.series = new SeriesMap<HistogramSeries>(options.guards, (values) => ({
      labels: Object.fromEntries(labelNames.map((n, i) => [n, values[i] as string])),
      counts: new Array<number>(this.#buckets.length).fill(0), sum: 0, count: 0,
    }))
    registry.registerMetric(this as unknown as Metric)
  }

  /** Records one observation (ignored unless finite and ≥ 0). */
  observe(series: HistogramSeries, value: number): void {
    if (!(value >= 0) || value === Infinity) return
    const buckets = this.#buckets
    for (let i = 0; i < buckets.length; i++) {
      if (value <= (buckets[i] as number)) { series.counts[i]! += 1; break }
    }
    series.sum += value
    series.count += 1
  }

  /** What prom-client's registry renders (the shape of prom-client's own Histogram.get()). */
  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = []
    for (const s of this.series.all) {
      let cumulative = 0
      this.#buckets.forEach((le, i) => {
        cumulative += s.counts[i] as number
        values.push({ labels: { ...s.labels, le }, value: cumulative, metricName: `${this.name}_bucket` })
      })
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` })
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** Zeroes every series in place (registry.resetMetrics()). */
  reset(): void {
    for (const s of this.series.all) { s.counts.fill(0); s.sum = 0; s.count = 0 }
  }
}
