import { formatDuration, parseDuration as parseDurationText } from './duration.js'
import { PipelineError } from './errors.js'

/** Retry schedule for one tool or destination, in milliseconds. */
export interface RetryPolicy {
  readonly maxRetries: number
  readonly initialIntervalMs: number
  readonly maxIntervalMs: number
  readonly multiplier: number
  readonly maxElapsedMs: number
}

/** The seeds' defaults: 5 retries, 1s doubling up to 5m, given up after 30m. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxRetries: 5, initialIntervalMs: 1000, maxIntervalMs: 300_000, multiplier: 2, maxElapsedMs: 1_800_000,
})

function bad(code: string, where: string, field: string, problem: string): never {
  throw new PipelineError('permanent', code, `${where}: field "${field}" ${problem}`)
}

/**
 * A duration field of a tool or destination in milliseconds (`fallback` when absent). Throws a permanent
 * PipelineError with `code` naming the field when the value is not a duration such as "50ms", "1s" or "5m".
 *
 * @example
 * parseDuration('tool "gh"', 'transform_timeout', '250ms', 100, 'TOOL_INVALID') // 250
 */
export function parseDuration(where: string, field: string, value: unknown, fallback: number, code: string): number {
  if (value === undefined) return fallback
  const ms = typeof value === 'string' || typeof value === 'number' ? parseDurationText(value) : undefined
  if (ms === undefined) bad(code, where, field, `must be a duration such as "50ms", "1s" or "5m"; got ${JSON.stringify(value)}`)
  return ms
}

/**
 * Validates a `retry_policy` object (`{ max_retries, initial_interval, max_interval, multiplier,
 * max_elapsed_time }`, durations as strings; every field optional, DEFAULT_RETRY_POLICY fills the rest).
 * Throws a permanent PipelineError with `code` naming the field.
 *
 * @example
 * parseRetryPolicy('tool "gh"', { max_retries: 3, initial_interval: '2s' }, 'TOOL_INVALID')
 */
export function parseRetryPolicy(where: string, value: unknown, code: string): RetryPolicy {
  if (value === undefined || value === null) return DEFAULT_RETRY_POLICY
  if (typeof value !== 'object' || Array.isArray(value)) bad(code, where, 'retry_policy', 'must be an object')
  const p = value as Record<string, unknown>
  const d = DEFAULT_RETRY_POLICY
  const maxRetries = p.max_retries ?? d.maxRetries
  if (typeof maxRetries !== 'number' || !Number.isInteger(maxRetries) || maxRetries < 0) {
    bad(code, where, 'retry_policy.max_retries', `must be an integer of at least 0; got ${JSON.stringify(maxRetries)}`)
  }
  const multiplier = p.multiplier ?? d.multiplier
  if (typeof multiplier !== 'number' || !(multiplier >= 1)) {
    bad(code, where, 'retry_policy.multiplier', `must be a number of at least 1; got ${JSON.stringify(multiplier)}`)
  }
  const initialIntervalMs = parseDuration(where, 'retry_policy.initial_interval', p.initial_interval, d.initialIntervalMs, code)
  const maxIntervalMs = parseDuration(where, 'retry_policy.max_interval', p.max_interval, d.maxIntervalMs, code)
  if (maxIntervalMs < initialIntervalMs) bad(code, where, 'retry_policy.max_interval', 'must not be shorter than initial_interval')
  return {
    maxRetries, multiplier, initialIntervalMs, maxIntervalMs,
    maxElapsedMs: parseDuration(where, 'retry_policy.max_elapsed_time', p.max_elapsed_time, d.maxElapsedMs, code),
  }
}

/**
 * A retry policy in its user-facing shape (snake_case, durations as strings), as `parseRetryPolicy` reads it.
 *
 * @example
 * retryPolicyToJSON(DEFAULT_RETRY_POLICY) // { max_retries: 5, initial_interval: '1s', … }
 */
export function retryPolicyToJSON(p: RetryPolicy): Record<string, unknown> {
  return {
    max_retries: p.maxRetries, initial_interval: formatDuration(p.initialIntervalMs), max_interval: formatDuration(p.maxIntervalMs),
    multiplier: p.multiplier, max_elapsed_time: formatDuration(p.maxElapsedMs),
  }
}
