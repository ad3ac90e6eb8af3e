import { Observable } from 'rxjs'
import type { Redis } from 'ioredis'
import type { Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import { isOutOfMemory } from './dedupe.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { CheckpointLedger } from './checkpoint.js'
import type { Logger } from '../observability/logger.js'
import type { HoldOptions } from './hold.js'
import { DEFAULT_KEYS, DONE_MARKER, idempotencyKey, type StreamKeys } from '../sources/keys.js'

/** Options of `settle`. */
export interface SettleOptions {
  /** Redis for the idempotency keys; without it nothing is marked done (dedupe then relies on the primary key). */
  readonly redis?: Pick<Redis, 'pipeline'>
  /** @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** How long (s) an event id stays known as done. @defaultValue 86400 (24h, WORKER_IDEMPOTENCY_TTL) */
  readonly ttlSeconds?: number
  /** Called for envelopes that reach settle still failed and not dead-lettered: they are nacked (redelivered). */
  readonly onUnsettled?: (env: Envelope) => void
  /**
   * The chain's checkpoint ledger: a message recorded there that has not reached settle nor passed a checkpoint
   * for `dropTimeoutMs` was dropped by a step; settle nacks it (releases it for redelivery) and logs a warning
   * naming the last position it was seen at. @defaultValue none: nothing is tracked
   */
  readonly ledger?: CheckpointLedger
  /** How long (ms) a tracked message may go unseen before it counts as dropped. @defaultValue 60000 */
  readonly dropTimeoutMs?: number
  /** Where the dropped-message warning goes. @defaultValue none */
  readonly logger?: Pick<Logger, 'warn'>
  /** Passed to the infrastructure hold (Redis down while marking done). */
  readonly hold?: HoldOptions  /**
   * The idempotency key of an envelope (the delivery pipeline keys each (event, destination) pair on its own).
   * @defaultValue `idempotencyKey(keys, tool id, event id)`
   */
  readonly key?: (env: Envelope) => string
}

/**
 * The last step: acks every envelope whose fate is durable. Events that were stored, transformed, forwarded or
 * found to be duplicates get their idempotency key marked done first (one pipeline per batch, only with
 * `redis`), then `settle()` hands the id to the source's batched XACK; without `redis` the batch is acked in the
 * same turn, with no round trip of its own. Dead-lettered and parked events are acked without
 * the mark, so a DLQ re-drive or a parked retry is processed again. An envelope that is still failed (no
 * `toDLQ` before this step) is not acked; it stays pending and comes back.
 *
 * @example
 * batches$.pipe(store({ db }), toDLQ({ db, redis }), settle()).subscribe()
 */
export function settle<E extends Envelope>(options: SettleOptions = {}): BatchStage<E> {
  const keys = options.keys ?? DEFAULT_KEYS
  const keyOf = options.key ?? ((env: Envelope) => idempotencyKey(keys, env.message.event.tool_id, env.message.event.id))
  const ttlSeconds = options.ttlSeconds ?? 86_400
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new RangeError(`settle: "ttlSeconds" must be an integer of at least 1; got ${ttlSeconds}`)
  }
  const marks = (env: E) => env.outcome !== undefined && env.outcome !== 'dead_lettered' && env.outcome !== 'parked' && !env.failure
  const markDone = async (redis: Pick<Redis, 'pipeline'>, done: readonly E[]): Promise<void> => {
    const pipe = redis.pipeline()
    for (const env of done) pipe.call('SET', keyOf(env), DONE_MARKER, 'EX', ttlSeconds)
    let results: [Error | null, unknown][]
    try {
      results = (await pipe.exec()) ?? []
    } catch (err) {
      throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE', `marking ${done.length} events done failed: ${(err as Error).message}`, { cause: err })
    }
    // a full Redis refuses the marker; acking anyway is safe (a redelivery meets the primary key) and keeps
    // the stream draining, which is what frees memory
    const err = results.find(([e]) => e && !isOutOfMemory(e))?.[0]
    if (err) throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE', `marking events done failed: ${err.message}`, { cause: err })
  }
  const ack = (envs: readonly E[]): readonly E[] => {
    for (const env of envs) {
      options.ledger?.forget(env.message)
      // ack only what is durable: stored, forwarded, duplicate, dead-lettered or parked; release the rest
      if (env.outcome) env.message.settle()
      else { env.message.nack(); options.onUnsettled?.(env) }
    }
    return envs
  }
  const dropTimeoutMs = options.dropTimeoutMs ?? 60_000
  if (!Number.isFinite(dropTimeoutMs) || dropTimeoutMs < 1) {
    throw new RangeError(`settle: "dropTimeoutMs" must be a positive number of milliseconds; got ${options.dropTimeoutMs}`)
  }
  const { redis } = options
  const chain: BatchStage<E> = batchStep((envs) => {
    const done = redis ? envs.filter(marks) : []
    return redis && done.length > 0 ? markDone(redis, done).then(() => ack(envs)) : ack(envs)
  }, options.hold ? { hold: options.hold } : {})
  const ledger = options.ledger
  if (!ledger) return chain
  return (source) => new Observable<readonly E[]>((subscriber) => {
    // a message dropped by a step never reaches settle: without this its credit would stay taken forever
    const sweep = setInterval(() => {
      for (const { message, position } of ledger.expire(dropTimeoutMs)) {
        message.nack()
        options.logger?.warn({ stream_id: message.streamId, event_id: message.event.id, tool_id: message.event.tool_id, last_position: position, drop_timeout_ms: dropTimeoutMs },
          `a message was last seen at "${position}" and did not reach settle within ${dropTimeoutMs} ms: the operator after that position dropped it; released for redelivery`)
      }
    }, Math.max(10, Math.floor(dropTimeoutMs / 4)))
    const sub = chain(source).subscribe(subscriber)
    return () => { clearInterval(sweep); sub.unsubscribe() }
  })
}
