/** Median of a non-empty list (the lower middle for an even count, so it is always a measured value). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)] as number
}

/** Smallest and largest value. */
export function range(values: readonly number[]): [min: number, max: number] {
  return values.length === 0 ? [NaN, NaN] : [Math.min(...values), Math.max(...values)]
}

/** A `--scenario` pattern (`*` any run of characters, `?` one) as a whole-name RegExp. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.split('').map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('')
  return new RegExp(`^${body}$`)
}

/**
 * Picks the scenarios named by comma-separated patterns (names or globs), plus the baselines they compare
 * with, in registry order. Throws naming a pattern that matches nothing.
 */
export function selectNames(all: readonly { name: string; baselines: readonly string[] }[], patterns: string | undefined): string[] {
  const chosen = new Set<string>()
  const list = patterns === undefined ? ['*'] : patterns.split(',').map((p) => p.trim()).filter(Boolean)
  for (const p of list) {
    const re = globToRegExp(p)
    const hits = all.filter((s) => re.test(s.name))
    if (hits.length === 0) {
      throw new RangeError(`bench: --scenario "${p}" matches no scenario; known: ${all.map((s) => s.name).join(', ')}`)
    }
    for (const s of hits) chosen.add(s.name)
  }
  // baselines of baselines too (a baseline may compare itself with another one)
  for (let size = -1; size !== chosen.size;) {
    size = chosen.size
    for (const s of all) if (chosen.has(s.name)) for (const b of s.baselines) chosen.add(b)
  }
  for (const name of chosen) {
    if (!all.some((s) => s.name === name)) throw new RangeError(`bench: baseline "${name}" is not registered`)
  }
  return all.filter((s) => chosen.has(s.name)).map((s) => s.name)
}

/** Formats a figure with thousands separators and sensible precision. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '–'
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return Math.round(value).toLocaleString('en')
  if (Math.abs(value) >= 10) return value.toFixed(1)
  return value.toFixed(2)
}
