import type { Redis } from 'ioredis'
import { isDone, type Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import { DEFAULT_KEYS, DONE_MARKER, idempotencyKey, type StreamKeys } from '../sources/keys.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { HoldOptions } from './hold.js'

/** Whether Redis refused a write because it is full (maxmemory with noeviction). */
export function isOutOfMemory(err: unknown): boolean {
  return /^OOM /.test((err as Error | null)?.message ?? '')
}

/** Options of `dedupe`. */
export interface DedupeOptions {
  readonly redis: Pick<Redis, 'pipeline'>
  /** Key names; idempotency keys are `<idempotencyPrefix><tool id>:<event id>`. @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /**
   * How long (s) an "in progress" claim lives. It only needs to outlast one processing attempt: after a crash
   * the redelivered entry may claim again once it expired. @defaultValue 60
   */
  readonly claimTtlSeconds?: number
  /** Passed to the infrastructure hold (Redis down). */
  readonly hold?: HoldOptions  /**
   * The idempotency key of an envelope (the delivery pipeline keys each (event, destination) pair on its own).
   * @defaultValue `idempotencyKey(keys, tool id, event id)`
   */
  readonly key?: (env: Envelope) => string
}

/**
 * Idempotency on the event's identity, (tool id, event id). For each batch it sends one pipeline of `SET key claim NX GET PX claimTtl`:
 * a key already marked done means the event was handled before, so the envelope gets outcome `duplicate`
 * and is settled without reprocessing; otherwise the event is claimed (briefly) and passes on. The key is
 * marked done only after the durable write, by `settle` — a crash in between never loses the event, and
 * the table's primary key stays the last guard. Redis down: the batch is held, not failed.
 *
 * @example
 * fromRedisStreamBatches(source).pipe(map((msgs) => msgs.map(toEnvelope)), dedupe({ redis }), …, settle({ redis }))
 */
export function dedupe<E extends Envelope>(options: DedupeOptions): BatchStage<E> {
  const keys = options.keys ?? DEFAULT_KEYS
  const keyOf = options.key ?? ((env: Envelope) => idempotencyKey(keys, env.message.event.tool_id, env.message.event.id))
  const claimTtlMs = (options.claimTtlSeconds ?? 60) * 1000
  if (!Number.isFinite(claimTtlMs) || claimTtlMs < 1000) {
    throw new RangeError(`dedupe: "claimTtlSeconds" must be at least 1; got ${options.claimTtlSeconds}`)
  }
  if (!options.redis) throw new TypeError('dedupe: "redis" must be an ioredis client')
  const check = async (envs: readonly E[], open: readonly E[]): Promise<readonly E[]> => {
    const pipe = options.redis.pipeline()
    for (const env of open) {
      pipe.call('SET', keyOf(env), `claim:${env.message.streamId}`, 'NX', 'GET', 'PX', claimTtlMs)
    }
    let results: [Error | null, unknown][]
    try {
      results = (await pipe.exec()) ?? []
    } catch (err) {
      throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
        `idempotency check of ${open.length} events failed: ${(err as Error).message}; events are held until Redis answers`, { cause: err })
    }
    // a full Redis (maxmemory, noeviction) refuses the claim: go on without it rather than stall every event;
    // settle's done marker and the table's primary key still keep a row from being stored twice
    const firstError = results.find(([err]) => err && !isOutOfMemory(err))?.[0]
    if (firstError) {
      throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
        `idempotency check failed: ${firstError.message}; events are held until Redis answers`, { cause: firstError })
    }
    const duplicates = new Set<E>()
    open.forEach((env, i) => { if (results[i]?.[1] === DONE_MARKER) duplicates.add(env) })
    return envs.map((env) => (duplicates.has(env) ? { ...env, outcome: 'duplicate' as const } : env))
  }
  return batchStep((envs) => {
    const open = envs.filter((env) => !isDone(env))
    return open.length === 0 ? envs : check(envs, open)
  }, options.hold ? { hold: options.hold } : {})
}
