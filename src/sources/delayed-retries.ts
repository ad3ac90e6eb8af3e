import type { Redis } from 'ioredis'
import type { Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import { DEFAULT_KEYS, type StreamKeys } from './keys.js'

/** Options of `parkInRedis`. */
export interface ParkOptions {
  readonly redis: Pick<Redis, 'call'>
  /** @defaultValue DEFAULT_KEYS (sorted set `webhook:delayed`) */
  readonly keys?: StreamKeys
}

/** A stream entry waiting in a delayed-retry sorted set: the stream it goes back to, the entry it came from, its fields. */
export interface ParkedEntry {
  readonly stream: string
  readonly from: string
  readonly fields: Readonly<Record<string, string>>
}

/**
 * Adds one entry to the delayed-retry sorted set `delayedKey`, scored by its due time; `startDelayedRetries`
 * appends it to its stream when due. Webhook events and commands park the same way.
 *
 * @example
 * await parkEntry(redis, 'commands:delayed', { stream: 'commands', from: '1-0', fields: { command: 'a' } }, Date.now() + 60_000)
 */
export async function parkEntry(redis: Pick<Redis, 'call'>, delayedKey: string, entry: ParkedEntry, dueAtMs: number): Promise<void> {
  await redis.call('ZADD', delayedKey, Math.round(dueAtMs), JSON.stringify(entry))
}

/**
 * The `park` function for `retryBackoff`: writes the envelope's stream entry (its raw fields plus `attempts`
 * and `first_attempt_at`) into the delayed-retry sorted set, scored by its due time. It resolves once Redis
 * has it, so the stream entry can be acked; `startDelayedRetries` puts it back on its stream when due.
 *
 * @example
 * retryBackoff({ step, park: parkInRedis({ redis }) })
 */
export function parkInRedis(options: ParkOptions): (env: Envelope, dueAtMs: number) => Promise<void> {
  const keys = options.keys ?? DEFAULT_KEYS
  return async (env, dueAtMs) => {
    const { stream, fields, streamId } = env.message
    try {
      await parkEntry(options.redis, keys.delayed, {
        stream, from: streamId,
        // an event that was only deferred (never tried) has no first attempt yet: its max_elapsed_time has not started
        fields: env.firstAttemptAt === undefined ? { ...fields, attempts: String(env.attempts) }
          : { ...fields, attempts: String(env.attempts), first_attempt_at: String(env.firstAttemptAt) },
      }, dueAtMs)
    } catch (err) {
      throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
        `parking event ${env.message.event.id} for a later retry failed: ${(err as Error).message}; it is held until Redis answers`, { cause: err })
    }
  }
}

// moves due members to their streams atomically: a crash never loses or doubles a parked retry
const MOVE_DUE = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local ok, item = pcall(cjson.decode, member)
  if ok and type(item) == 'table' and type(item.stream) == 'string' and type(item.fields) == 'table' then
    local args = { item.stream, '*' }
    for k, v in pairs(item.fields) do
      table.insert(args, k)
      table.insert(args, v)
    end
    redis.call('XADD', unpack(args))
  end
  redis.call('ZREM', KEYS[1], member)
end
return #due`

/** Options of `startDelayedRetries`. */
export interface DelayedRetriesOptions {
  readonly redis: Pick<Redis, 'call'>
  /** @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** How often (ms) due retries are looked for. @defaultValue 1000 */
  readonly intervalMs?: number
  /** Most retries moved per look. @defaultValue 500 */
  readonly batchSize?: number
  /** Called with errors (Redis down); the scheduler keeps going. */
  readonly onError?: (err: Error) => void
}

/**
 * Re-enqueues parked retries when they are due: each is moved from the delayed-retry sorted set back onto its
 * stream (with its attempt count) in one atomic script. Any number of processes may run it at once.
 * Returns a handle whose `close()` stops it (idempotent).
 *
 * @example
 * const delayed = startDelayedRetries({ redis }); … ; await delayed.close()
 */
export function startDelayedRetries(options: DelayedRetriesOptions): { close(): Promise<void> } {
  const keys = options.keys ?? DEFAULT_KEYS
  const intervalMs = options.intervalMs ?? 1000
  const batchSize = options.batchSize ?? 500
  if (!Number.isInteger(intervalMs) || intervalMs < 10) {
    throw new RangeError(`startDelayedRetries: "intervalMs" must be an integer of at least 10; got ${intervalMs}`)
  }
  let running: Promise<void> | undefined
  let closed: Promise<void> | undefined
  // a client that is reconnecting would queue the script, and close() behind it, until Redis is back
  const status = () => (options.redis as Partial<Pick<Redis, 'status'>>).status
  const ready = () => status() === undefined || status() === 'ready'
  const tick = async () => {
    if (!ready()) return
    try {
      // keep moving while whole batches come back, so a burst of due retries does not wait a full interval each
      while (Number(await options.redis.call('EVAL', MOVE_DUE, 1, keys.delayed, Date.now(), batchSize)) >= batchSize && !closed);
    } catch (err) {
      options.onError?.(err as Error)
    }
  }
  // one look at a time: a look still waiting (Redis slow or gone) is not queued behind by another every interval
  const timer = setInterval(() => { running ??= tick().finally(() => { running = undefined }) }, intervalMs)
  timer.unref()
  return {
    // a look sent before Redis went away runs when it is back (the script is atomic): it is not waited for
    close: () => (closed ??= (async () => { clearInterval(timer); if (ready()) await running })()),
  }
}
