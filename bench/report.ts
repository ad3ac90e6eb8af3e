import { cpus } from 'node:os'
import { baselinesOf, type Scenario } from './define-scenario.js'
import { formatNumber, median, range } from './stats.js'

/** One timed run as stored in the JSON. */
export interface RunRecord {
  readonly scenario: string
  readonly round: number
  readonly events: number
  readonly payload: string
  readonly seconds: number
  readonly rate: number
  readonly cpuUsPerEvent: number
  readonly extra?: Readonly<Record<string, number | string>>
  readonly error?: string
}

/** One scenario's figures over its runs. */
export interface Summary {
  readonly scenario: string
  readonly description: string
  readonly isBaseline: boolean
  readonly unit: string
  readonly events: number
  readonly payload: string
  readonly runs: number
  readonly failed: number
  readonly median: number
  readonly min: number
  readonly max: number
  readonly cpuUsPerEvent: number
  /** Median over the first baseline's median, with its name. */
  readonly ratio?: { readonly baseline: string; readonly value: number; readonly target?: number; readonly met?: boolean }
  /** Ratios to the other baselines. */
  readonly otherRatios: readonly { readonly baseline: string; readonly value: number }[]
  /** Extras of the median run. */
  readonly extra?: Readonly<Record<string, number | string>>
}

/** Medians, ranges and baseline ratios for each scenario that ran. */
export function summarize(scenarios: readonly Scenario[], records: readonly RunRecord[]): Summary[] {
  const base = scenarios.map((s) => {
    const ok = records.filter((r) => r.scenario === s.name && r.error === undefined)
    const all = records.filter((r) => r.scenario === s.name)
    const rates = ok.map((r) => r.rate)
    const [min, max] = range(rates)
    const mid = median(rates)
    const medianRun = ok.find((r) => r.rate === mid)
    return {
      scenario: s.name, description: s.description, isBaseline: s.isBaseline === true, unit: s.unit ?? 'events/s',
      events: all[0]?.events ?? 0, payload: all[0]?.payload ?? '', runs: all.length, failed: all.length - ok.length,
      median: mid, min, max, cpuUsPerEvent: median(ok.map((r) => r.cpuUsPerEvent)),
      ...(medianRun?.extra ? { extra: medianRun.extra } : {}),
    }
  })
  const byName = new Map(base.map((b) => [b.scenario, b]))
  return base.map((b, i) => {
    const names = baselinesOf(scenarios[i] as Scenario)
    const ratios = names.map((n) => ({ baseline: n, value: b.median / (byName.get(n)?.median ?? NaN) }))
    const first = ratios[0]
    const target = (scenarios[i] as Scenario).targetRatio
    return {
      ...b,
      ...(first ? { ratio: { ...first, ...(target !== undefined ? { target, met: first.value >= target } : {}) } } : {}),
      otherRatios: ratios.slice(1),
    }
  })
}

function notes(s: Summary): string {
  const parts = Object.entries(s.extra ?? {}).map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : v}`)
  for (const r of s.otherRatios) parts.push(`${formatNumber(r.value)}× ${r.baseline}`)
  if (s.failed > 0) parts.push(`${s.failed} run(s) FAILED`)
  return parts.join('; ')
}

/** The markdown report: header facts and one table row per scenario. */
export function markdown(summaries: readonly Summary[], facts: { command: string; servers: string; startedAt: string; seconds: number }): string {
  const lines = [
    `# hookstream bench, ${facts.startedAt}`,
    '',
    `\`${facts.command}\` — node ${process.version}${process.env.NODE_OPTIONS ? ` (NODE_OPTIONS=${process.env.NODE_OPTIONS})` : ''}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${facts.servers}; ` +
      `${Math.round(facts.seconds)} s in all. Figures are the median of the runs, min–max beside it; runs of a scenario and ` +
      'its baseline alternate. Ratio = median ÷ the baseline\'s median from this same invocation. CPU = Node CPU time ' +
      '(user + system) of the process doing the work, per event.',
    '',
    '| scenario | N | payload | median | min–max | unit | ratio | CPU µs/event | notes |',
    '|---|--:|---|--:|--:|---|---|--:|---|',
  ]
  for (const s of summaries) {
    const ratio = s.ratio
      ? `${formatNumber(s.ratio.value)}× ${s.ratio.baseline}${s.ratio.target !== undefined ? ` (target ≥ ${s.ratio.target}×: ${s.ratio.met ? 'met' : 'MISSED'})` : ''}`
      : ''
    lines.push(`| ${s.isBaseline ? `_${s.scenario}_` : `**${s.scenario}**`} | ${s.events.toLocaleString('en')} | ${s.payload} | ` +
      `${formatNumber(s.median)} | ${formatNumber(s.min)}–${formatNumber(s.max)} | ${s.unit} | ${ratio} | ${formatNumber(s.cpuUsPerEvent)} | ${notes(s)} |`)
  }
  lines.push('', ...summaries.map((s) => `- \`${s.scenario}\`: ${s.description} (${s.runs} run${s.runs === 1 ? '' : 's'})`), '')
  return lines.join('\n')
}
