/**
 * Runs `work` with a time limit: resolves with its result, or with `onTimeout()` once `limitMs` passed, whichever
 * comes first. On time-out the signal given to `work` aborts and a late result (or error) of `work` is ignored,
 * so a step that never settles no longer holds whoever awaits it. Without `limitMs` it is `work` alone.
 *
 * @example
 * const env2 = await withTimeLimit((signal) => step(env, signal), 300_000, () => ({ ...env, failure }))
 */
export async function withTimeLimit<T>(work: (signal: AbortSignal) => Promise<T>, limitMs: number | undefined, onTimeout: () => T): Promise<T> {
  const abort = new AbortController()
  if (limitMs === undefined) return work(abort.signal)
  let timer: ReturnType<typeof setTimeout> | undefined
  const timedOut = new Promise<T>((resolve) => {
    timer = setTimeout(() => { abort.abort(); resolve(onTimeout()) }, limitMs)
    // a guard, not work: it must not keep a process alive that has nothing else to do (the work's own sockets do)
    timer.unref()
  })
  try {
    return await Promise.race([work(abort.signal), timedOut])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Checks a time limit option (ms): unset, or an integer from 1 to 2^31-1 (setTimeout's range). Throws a
 * RangeError naming `where`.
 *
 * @example
 * checkTimeLimit('retryBackoff: "timeoutMs"', options.timeoutMs)
 */
export function checkTimeLimit(where: string, limitMs: number | undefined): number | undefined {
  if (limitMs !== undefined && (!Number.isInteger(limitMs) || limitMs < 1 || limitMs > 2_147_483_647)) {
    throw new RangeError(`${where} must be an integer from 1 to 2147483647 (ms); got ${limitMs}`)
  }
  return limitMs
}
