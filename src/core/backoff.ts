import type { RetryPolicy } from './tool.js'

/**
 * Delay before retry number `attempt` (1 = the first retry): `initialInterval × multiplier^(attempt-1)`, capped at
 * `maxInterval`, with full jitter in [50%, 100%] of that value so that retries of many events spread out.
 * `random` is injectable for tests.
 *
 * @example
 * backoffDelayMs(DEFAULT_RETRY_POLICY, 3) // between 2000 and 4000
 */
export function backoffDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxIntervalMs, policy.initialIntervalMs * policy.multiplier ** Math.max(0, attempt - 1))
  return Math.round(base * (0.5 + random() * 0.5))
}

/**
 * Whether another retry is allowed after `attempt` retries have been made and `elapsedMs` has passed since the
 * first try (both caps of the policy apply).
 *
 * @example
 * mayRetry(DEFAULT_RETRY_POLICY, 5, 1000) // false: max_retries is 5
 */
export function mayRetry(policy: RetryPolicy, attempt: number, elapsedMs: number): boolean {
  return attempt < policy.maxRetries && elapsedMs < policy.maxElapsedMs
}
