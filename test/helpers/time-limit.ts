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

/**
 * What `promise` resolves with, or `"still waiting"` when it has not within `ms`: for asserting that a call
 * returns (a close, a stop) without the test hanging until its own time limit.
 *
 * @example
 * assert.equal(await within(worker.close(), 5000), { drained: false })
 */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still waiting'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'still waiting'>((resolve) => { timer = setTimeout(resolve, ms, 'still waiting') })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}
