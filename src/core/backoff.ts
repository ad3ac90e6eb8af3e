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

/** What `nextRetry` decided: wait `delayMs`; `requestedMs` is set when a longer Retry-After was cut to the cap. */
export interface RetryDecision {
  readonly delayMs: number
  readonly requestedMs?: number
}

/**
 * The one retry rule of webhook steps and command handlers: after `retriesMade` retries and `elapsedMs` since
 * the first try, another retry is allowed while both caps of the policy allow it; it waits what the failure's
 * Retry-After asks (cut to `maxRetryAfterMs`, so a sender cannot park work for years) or else the policy's
 * jittered backoff. `undefined`: no retry is left, the failure is final.
 *
 * @example
 * nextRetry(DEFAULT_RETRY_POLICY, 0, 10, undefined, 3_600_000) // { delayMs: 500…1000 }
 * nextRetry(DEFAULT_RETRY_POLICY, 0, 10, 86_400_000, 3_600_000) // { delayMs: 3600000, requestedMs: 86400000 }
 */
export function nextRetry(
  policy: RetryPolicy, retriesMade: number, elapsedMs: number, retryAfterMs: number | undefined, maxRetryAfterMs: number,
  random: () => number = Math.random,
): RetryDecision | undefined {
  if (!mayRetry(policy, retriesMade, elapsedMs)) return undefined
  if (retryAfterMs === undefined) return { delayMs: backoffDelayMs(policy, retriesMade + 1, random) }
  return retryAfterMs > maxRetryAfterMs ? { delayMs: maxRetryAfterMs, requestedMs: retryAfterMs } : { delayMs: retryAfterMs }
}
