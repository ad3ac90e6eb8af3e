const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/

/**
 * Parses a duration string such as `"50ms"`, `"1s"`, `"5m"`, `"24h"` or `"1h30m"` into milliseconds.
 * A plain number is taken as milliseconds. Returns `undefined` when the text is not a duration, so the
 * caller can name its own key in the error.
 *
 * @example
 * parseDuration('1m30s') // 90000
 */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : undefined
  const trimmed = text.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed)
  const parts = trimmed.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g)
  if (!parts || parts.join('') !== trimmed) return undefined
  let total = 0
  for (const part of parts) {
    const m = DURATION.exec(part)
    if (!m) return undefined
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number)
  }
  return Math.round(total)
}

/**
 * Formats milliseconds as the shortest duration string `parseDuration` reads back (`90000` → `"90s"`).
 *
 * @example
 * formatDuration(300000) // "5m"
 */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}
