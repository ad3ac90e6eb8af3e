/**
 * What the pipeline does with a failure:
 * - `permanent`: dead-letter now (invalid payload, unknown tool, 4xx, transform error);
 * - `transient`: retry with backoff, then dead-letter (timeout, 5xx, 429, connection reset);
 * - `infrastructure`: our own dependency is down (PostgreSQL, Redis); hold the event unacked and back off.
 */
export type FailureKind = 'permanent' | 'transient' | 'infrastructure'

/**
 * The error every step uses to say how a failure should be handled. `code` is stable and documented in the
 * README's error table; `message` says what was wrong, where, and how to fix it, and never holds a secret.
 *
 * @example
 * new PipelineError('permanent', 'UNKNOWN_TOOL', 'tool "gh-main" is not configured; add it with `hookstream tools add`')
 */
export class PipelineError extends Error {
  override readonly name = 'PipelineError'
  /** A 429's or 503's Retry-After in milliseconds, when the destination sent one. */
  readonly retryAfterMs: number | undefined
  /**
   * The step did not try: it waits for its turn (an open circuit breaker, a rate limit), so `retryBackoff` waits
   * `retryAfterMs` without spending one of the event's retries.
   */
  readonly deferred: boolean

  constructor(
    readonly kind: FailureKind,
    readonly code: string,
    message: string,
    options?: ErrorOptions & { retryAfterMs?: number; deferred?: boolean },
  ) {
    super(message, options)
    this.retryAfterMs = options?.retryAfterMs
    this.deferred = options?.deferred ?? false
  }
}

/**
 * Tells whether `err` is a PipelineError, also when it comes from another copy of this module
 * (it checks the fields, not only the prototype).
 */
export function isPipelineError(err: unknown): err is PipelineError {
  if (err instanceof PipelineError) return true
  if (typeof err !== 'object' || err === null) return false
  const e = err as { name?: unknown; kind?: unknown; code?: unknown }
  return e.name === 'PipelineError' && typeof e.code === 'string' &&
    (e.kind === 'permanent' || e.kind === 'transient' || e.kind === 'infrastructure')
}

/**
 * Thrown at startup when configuration or options are wrong. The message names the key and the fix.
 *
 * @example
 * throw new ConfigError('WORKER_IDEMPOTENCY_TTL', 'must be a duration such as "24h" or "90m"; got "1 day"')
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code = 'CONFIG_INVALID'
  constructor(readonly key: string, problem: string) {
    super(`${key} ${problem}`)
  }
}
