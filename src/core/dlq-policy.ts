import type { PipelineError } from './errors.js'

/** When the DLQ worker re-queues dead-lettered events, and when it gives up. */
export interface DlqPolicy {
  /** Wait before re-queue round n (the last one repeats). @defaultValue [1m, 10m, 1h] */
  readonly delaysMs: readonly number[]
  /** Rounds after which an entry is `failed` and waits for a person. @defaultValue 3 */
  readonly maxRounds: number
}

export const DEFAULT_DLQ_POLICY: DlqPolicy = Object.freeze({ delaysMs: Object.freeze([60_000, 600_000, 3_600_000]), maxRounds: 3 })

/** The `error_class` of a DLQ row: the failure kind, or `poison` for entries delivered too often. */
export function errorClass(failure: PipelineError): string {
  return failure.code === 'POISON' ? 'poison' : failure.kind
}

/**
 * What a DLQ row becomes after a failure in round `retryCount` (0 = never re-queued): `pending` with the next
 * due time, or `failed` once the rounds are used up or when re-queueing cannot help (poison, undecodable).
 *
 * @example
 * dlqSchedule(DEFAULT_DLQ_POLICY, 0, failure, Date.now()) // { status: 'pending', nextRetryAt: now + 1m }
 */
export function dlqSchedule(policy: DlqPolicy, retryCount: number, failure: PipelineError, nowMs: number):
  { status: 'pending' | 'failed'; nextRetryAt: Date | null } {
  const hopeless = failure.code === 'POISON' || failure.code === 'UNDECODABLE_ENTRY' || failure.code === 'INVALID_EVENT'
  if (hopeless || retryCount >= policy.maxRounds || policy.delaysMs.length === 0) return { status: 'failed', nextRetryAt: null }
  const delay = policy.delaysMs[Math.min(retryCount, policy.delaysMs.length - 1)] as number
  return { status: 'pending', nextRetryAt: new Date(nowMs + delay) }
}
