/** The property test/run.cjs reads for a test's own time limit. */
const TIME_LIMIT_KEY = Symbol.for('hookstream.test.timeLimitMs')

/**
 * Gives one test (or hook) a time limit other than test/run.cjs's default (60 s, TEST_TIME_LIMIT_MS): for tests
 * that drive whole service processes through tens of thousands of events. Past the limit the test fails by name.
 *
 * @example
 * Crash('50000 events survive two kills', withTimeLimit(300_000, async ({ s }) => { … }))
 */
export function withTimeLimit<T extends (...args: never[]) => unknown>(ms: number, fn: T): T {
  if (!Number.isInteger(ms) || ms < 1) throw new RangeError(`withTimeLimit: "ms" must be a positive integer; got ${ms}`)
  return Object.assign(fn, { [TIME_LIMIT_KEY]: ms })
}
