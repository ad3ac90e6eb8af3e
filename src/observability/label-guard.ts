/** The value a label takes once its distinct-value budget is spent. */
export const OTHER_LABEL_VALUE = 'other'

/** The value to pass for a tool that is not configured (an unknown `:toolId` in the URL). */
export const UNKNOWN_LABEL_VALUE = 'unknown'

const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * Bounds the cardinality of one metric label: the first `maxValues` distinct values pass unchanged, every later
 * new value folds into `"other"`, so a sender who invents tool ids or event types cannot create unbounded series.
 * Empty or non-string values become `"unknown"`. Values longer than `maxLength` characters or holding control
 * characters fold into `"other"` too.
 *
 * @example
 * const guard = new LabelGuard(100)
 * counter.labels(guard.bound(toolId)).inc()
 */
export class LabelGuard {
  readonly #seen = new Set<string>()

  /**
   * @param maxValues distinct values let through before folding into "other"; at least 1.
   * @param maxLength the longest value let through, in characters. @defaultValue 128
   */
  constructor(readonly maxValues: number, readonly maxLength = 128) {
    if (!Number.isInteger(maxValues) || maxValues < 1) {
      throw new RangeError(`LabelGuard: "maxValues" must be an integer of at least 1; got ${maxValues}`)
    }
  }

  /** Returns `value` when it is known or the budget has room, otherwise `"other"`. */
  bound(value: string | undefined): string {
    if (typeof value !== 'string' || value === '') return UNKNOWN_LABEL_VALUE
    if (this.#seen.has(value)) return value
    if (value.length > this.maxLength || CONTROL.test(value) || this.#seen.size >= this.maxValues) return OTHER_LABEL_VALUE
    this.#seen.add(value)
    return value
  }

  /** How many distinct values passed so far (at most `maxValues`). */
  get size(): number {
    return this.#seen.size
  }
}
