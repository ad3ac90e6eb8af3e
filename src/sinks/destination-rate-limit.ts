import { createHash } from 'node:crypto'
import type { DestinationRateLimit } from '../core/destination.js'
import { PipelineError } from '../core/errors.js'

export type { DestinationRateLimit } from '../core/destination.js'

/** The subset of ioredis the limiter uses (a `Redis` or a `Cluster` client fits). */
export interface DestinationRateLimitRedis {
  call(command: string, ...args: (string | number)[]): Promise<unknown>
}

/** Options of `DestinationRateLimiter`. */
export interface DestinationRateLimiterOptions {
  readonly redis: DestinationRateLimitRedis
  /** Prefix of the bucket keys; a destination's bucket is `<prefix><destination id>`. See `StreamKeys.destinationRateLimitPrefix`. */
  readonly prefix: string
}

// One hash per destination: tokens, last refill (ms) and `until`, the end of a receiver's Retry-After. Taking a
// token and emptying the bucket run atomically in Redis on Redis's clock, so every worker process shares the
// limit. ARGV[3] > 0 empties the bucket until now + ARGV[3] ms instead of taking a token. Returns the wait in
// ms: 0 when a token was taken.
const SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local blockMs = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'until')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
local untilMs = tonumber(state[3]) or 0
if tokens == nil or ts == nil then tokens = burst; ts = now end
local wait = 0
if blockMs > 0 then
  untilMs = math.max(untilMs, now + blockMs)
  tokens = 0
  ts = untilMs
elseif now < untilMs then
  wait = untilMs - now
else
  if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000); ts = now end
  if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts), 'until', tostring(untilMs))
redis.call('PEXPIRE', KEYS[1], math.max(0, untilMs - now) + math.ceil(burst * 1000 / rate) + 1000)
return wait
`
const SHA = createHash('sha1').update(SCRIPT).digest('hex')

/**
 * A token bucket per destination in Redis, shared by every worker process (one Lua script). `take` answers 0
 * when a request may go now, else the wait in ms; `block` empties the bucket until a receiver's Retry-After
 * has passed, so no process sends to it before then. A Redis failure is an infrastructure `REDIS_UNAVAILABLE`
 * (the pipeline holds the event).
 *
 * @example
 * const limiter = new DestinationRateLimiter({ redis, prefix: keys.destinationRateLimitPrefix })
 * const waitMs = await limiter.take('gh-main', { perSecond: 50, burst: 10 })
 */
export class DestinationRateLimiter {
  constructor(private readonly options: DestinationRateLimiterOptions) {}

  /** Takes a token for `destination`: resolves with 0 when it may send now, else with the wait in ms. */
  take(destination: string, limit: DestinationRateLimit): Promise<number> {
    return this.run(destination, limit, 0)
  }

  /** Empties `destination`'s bucket for `retryAfterMs` (a receiver's Retry-After). */
  async block(destination: string, limit: DestinationRateLimit, retryAfterMs: number): Promise<void> {
    if (retryAfterMs > 0) await this.run(destination, limit, Math.ceil(retryAfterMs))
  }

  private async run(destination: string, limit: DestinationRateLimit, blockMs: number): Promise<number> {
    const args = [1, `${this.options.prefix}${destination}`, limit.perSecond, limit.burst, blockMs]
    try {
      let reply: unknown
      try {
        reply = await this.options.redis.call('EVALSHA', SHA, ...args)
      } catch (err) {
        // first call on this server (or after SCRIPT FLUSH / a restart): send the script itself once
        if (!/NOSCRIPT/.test((err as Error)?.message ?? '')) throw err
        reply = await this.options.redis.call('EVAL', SCRIPT, ...args)
      }
      return Number(reply)
    } catch (err) {
      throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
        `the rate limit of destination "${destination}" could not be checked: ${(err as Error).message}; the delivery waits until Redis answers`, { cause: err })
    }
  }
}
