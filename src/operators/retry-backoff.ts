import { defer, map, mergeMap, of, timer, type MonoTypeOperatorFunction, type Observable } from 'rxjs'
import { nextRetry } from '../core/backoff.js'
import { isDone, processingTimeout, type Envelope } from '../core/envelope.js'
import { isPipelineError, PipelineError } from '../core/errors.js'
import { checkTimeLimit, withTimeLimit } from '../core/time-limit.js'
import { DEFAULT_RETRY_POLICY, type RetryPolicy, type ToolConfig } from '../core/tool.js'
import type { BatchStage } from './batch-step.js'
import { holdWhileDown, type HoldOptions } from './hold.js'
import { orderByKey } from './order-by-key.js'
import { perEvent } from './per-event.js'

/** Options of `retryBackoff`. */
export interface RetryBackoffOptions<E extends Envelope> {
  /**
   * The step to run per envelope; it returns the envelope with `failure` set when it failed (or throws). With
   * `timeoutMs`, `signal` aborts when the attempt ran out of time, so the step can stop its own work.
   */
  readonly step: (env: E, signal?: AbortSignal) => Promise<E>
  /**
   * Longest one attempt may take (ms, WORKER_PROCESSING_TIMEOUT). An attempt over it fails as transient
   * (`PROCESSING_TIMEOUT`: retried by the policy, then dead-lettered) and frees its concurrency slot, even when
   * the step never settles. @defaultValue unset: no limit
   */
  readonly timeoutMs?: number
  /** The retry policy of an envelope. @defaultValue the tool's `retryPolicy`, else DEFAULT_RETRY_POLICY */
  readonly policy?: (env: E) => RetryPolicy
  /** Envelopes in the step (or waiting for a short retry) at once, over all batches. @defaultValue 64 */
  readonly concurrency?: number
  /**
   * Ordering key, e.g. `(env) => env.message.event.repository`: envelopes with the same key run one after the
   * other, in arrival order (with their retries), while other keys run in parallel. @defaultValue unset: no order
   */
  readonly orderBy?: (env: E) => string
  /**
   * Once an envelope of a batch is done, how long (ms) the others may take before the done ones go on as a batch
   * of their own (the rest follow the same way), so one slow destination holds only its own envelopes' acks and
   * credit. Envelopes done within this time of each other still share a batch. @defaultValue 25
   */
  readonly splitAfterMs?: number
  /**
   * Retries due within this many ms wait in process; later ones are parked with `park` so they do not hold
   * the source's credit. @defaultValue 5000
   */
  readonly maxInlineDelayMs?: number
  /** Parks an envelope durably until `dueAtMs` (see `parkInRedis`); without it every retry waits in process. */
  readonly park?: (env: E, dueAtMs: number) => Promise<void>
  /** Told about every retry (for metrics): the retry's number (1 = first retry) and why. */
  readonly onRetry?: (env: E, attempt: number, failure: PipelineError) => void
  /**
   * The longest Retry-After (ms) honoured: a destination asking for more waits this long instead, so a sender
   * cannot park work for years. @defaultValue 3600000 (1 h)
   */
  readonly maxRetryAfterMs?: number
  /**
   * Told after every run of the step that decided something (not after an infrastructure hold), with the result
   * and when the next attempt is due (ms since epoch; undefined when none follows: it succeeded, failed
   * permanently or ran out of retries). The delivery-attempt log hangs here.
   */
  readonly onStepResult?: (result: E, nextAttemptAtMs: number | undefined) => void
  /** Told when a Retry-After was cut to `maxRetryAfterMs` (for metrics), with what the destination asked for. */
  readonly onRetryAfterCapped?: (env: E, requestedMs: number) => void
  /** Passed to the hold of `park` when Redis is down. */
  readonly hold?: HoldOptions
  /** Jitter source, for tests. @defaultValue Math.random */
  readonly random?: () => number
}

function asFailure(err: unknown): PipelineError {
  return isPipelineError(err) ? err : new PipelineError('transient', 'STEP_FAILED', `step failed: ${(err as Error)?.message ?? String(err)}`, { cause: err })
}

/**
 * Runs `step` per envelope of each batch with retries for transient failures (5xx, 429, timeouts, connection errors):
 * exponential backoff with jitter (initial × multiplier^n, capped at max interval), at most `max_retries`
 * retries within `max_elapsed_time`, then the failure stays on the envelope for `toDLQ`. A 429's Retry-After
 * is honoured. Retries of one event never stall the others (one bounded `mergeMap` over all batches); a
 * batch leaves the step once all of its envelopes are done, or in parts when some take longer than
 * `splitAfterMs` more. A retry due later than
 * `maxInlineDelayMs` is parked durably (`park`) and the envelope leaves with outcome `parked`, freeing the
 * source's credit; the parked event comes back on the stream with its attempt count. Permanent failures pass
 * through at once.
 *
 * @example
 * batches$.pipe(retryBackoff({ step: forwardStep({ sink }), park: parkInRedis({ redis }) }), toDLQ({ db, redis }))
 */
export function retryBackoff<E extends Envelope & { readonly tool?: ToolConfig }>(
  options: RetryBackoffOptions<E>,
): BatchStage<E> {
  const concurrency = options.concurrency ?? 64
  const maxInline = options.maxInlineDelayMs ?? 5000
  if (typeof options.step !== 'function') throw new TypeError('retryBackoff: "step" must be a function (env) => Promise<env>')
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`retryBackoff: "concurrency" must be an integer of at least 1; got ${concurrency}`)
  }
  if (!Number.isFinite(maxInline) || maxInline < 0) {
    throw new RangeError(`retryBackoff: "maxInlineDelayMs" must be a number of at least 0; got ${maxInline}`)
  }
  const timeoutMs = checkTimeLimit('retryBackoff: "timeoutMs"', options.timeoutMs)
  const policyOf = options.policy ?? ((env: E) => env.tool?.retryPolicy ?? DEFAULT_RETRY_POLICY)
  const maxRetryAfter = options.maxRetryAfterMs ?? 3_600_000
  if (!Number.isFinite(maxRetryAfter) || maxRetryAfter < 0) {
    throw new RangeError(`retryBackoff: "maxRetryAfterMs" must be a number of at least 0; got ${maxRetryAfter}`)
  }

  const runStep = (env: E): Promise<E> => withTimeLimit((signal) => options.step(env, signal), timeoutMs,
    () => ({ ...env, failure: processingTimeout(env.message, timeoutMs as number) }))

  const attempt = (env: E): Observable<E> => defer(async () => {
    try {
      return await runStep(env)
    } catch (err) {
      return { ...env, failure: asFailure(err) }
    }
  }).pipe(mergeMap((result): Observable<E> => {
    const failure = result.failure
    if (!failure || failure.kind === 'permanent' || env.failure) {
      options.onStepResult?.(result, undefined)
      return of(result)
    }
    if (failure.kind === 'infrastructure') {
      // our own dependency is down: wait and try again, without spending the event's retries
      return timer(1000).pipe(mergeMap(() => attempt(env)))
    }
    if (failure.deferred && failure.retryAfterMs !== undefined) {
      // the step did not try (open breaker, rate limit): no retry is spent, and the wait does not count
      // against max_elapsed_time, so a destination that is down for long does not dead-letter its backlog
      const delay = Math.min(failure.retryAfterMs, maxRetryAfter)
      options.onStepResult?.(result, Date.now() + delay)
      return later({ ...env, firstAttemptAt: env.firstAttemptAt === undefined ? undefined : env.firstAttemptAt + delay }, delay)
    }
    const firstAttemptAt = env.firstAttemptAt ?? Date.now()
    const retry = nextRetry(policyOf(env), env.attempts, Date.now() - firstAttemptAt, failure.retryAfterMs, maxRetryAfter, options.random)
    if (!retry) {
      options.onStepResult?.(result, undefined)
      return of(result)
    }
    const attempts = env.attempts + 1
    if (retry.requestedMs !== undefined) options.onRetryAfterCapped?.(env, retry.requestedMs)
    const delay = retry.delayMs
    options.onRetry?.(env, attempts, failure)
    options.onStepResult?.(result, Date.now() + delay)
    return later({ ...env, attempts, firstAttemptAt }, delay)
  }))

  // waits in process for a short delay, parks durably for a long one
  const later = (next: E, delay: number): Observable<E> => {
    if (delay > maxInline && options.park) {
      const park = options.park
      return holdWhileDown(() => park(next, Date.now() + delay), options.hold).pipe(map(() => ({ ...next, outcome: 'parked' as const })))
    }
    return timer(delay).pipe(mergeMap(() => attempt(next)))
  }

  const each: MonoTypeOperatorFunction<E> = mergeMap(attempt, concurrency)
  const { orderBy } = options
  if (orderBy !== undefined && typeof orderBy !== 'function') throw new TypeError('retryBackoff: "orderBy" must be a function of an envelope returning its ordering key')
  // envelopes decided already (stored in store mode, failed) pass by; a batch of only those costs nothing here.
  // One subscription for all batches, so the concurrency and the per-key order span them.
  return perEvent(orderBy ? orderByKey({ key: orderBy }, each) : each, {
    skip: isDone, shared: true, splitAfterMs: options.splitAfterMs ?? 25,
  })
}
