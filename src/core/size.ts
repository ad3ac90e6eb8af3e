const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
}

/**
 * Parses a byte size: a plain number of bytes, or a number with a unit `b`, `kb`/`kib`, `mb`/`mib`, `gb`/`gib`
 * (any case; all units are powers of 1024). Returns `undefined` when the text is not a size, so the caller
 * can name its key in the error.
 *
 * @example
 * parseSize('10MiB') // 10485760
 * parseSize('1mb')   // 1048576
 */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim())
  const unit = UNITS[m?.[2]?.toLowerCase() ?? 'x']
  if (!m || unit === undefined) return undefined
  const bytes = Math.round(Number(m[1]) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/**
 * Writes a byte count in the largest binary unit that divides it (`GiB`, `MiB`, `KiB`), else in bytes, so that
 * `parseSize(formatSize(n)) === n`.
 *
 * @example
 * formatSize(1048576) // '1MiB'
 * formatSize(1500)    // '1500'
 */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}
