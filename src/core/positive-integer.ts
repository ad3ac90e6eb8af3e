/**
 * Checks a numeric option: `value` (or `fallback` when it is undefined) must be an integer of at least 1.
 * Throws a RangeError naming the owner and the option, e.g. `startRetention: "batch" must be an integer of at
 * least 1; got 0`. Bind `owner` once per module.
 *
 * @example
 * const positive = positiveInteger.bind(undefined, 'startRetention')
 * const batch = positive('batch', options.batch, 1000)
 */
export function positiveInteger(owner: string, name: string, value: number | undefined, fallback?: number): number {
  const v = value ?? fallback
  if (v === undefined || !Number.isInteger(v) || v < 1) throw new RangeError(`${owner}: "${name}" must be an integer of at least 1; got ${value}`)
  return v
}
