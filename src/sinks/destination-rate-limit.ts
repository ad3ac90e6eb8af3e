import type { DestinationRateLimit } from '../core/destination.js'
import { PipelineError } from '../core/errors.js'
import { takeTokens, type TokenBucketRedis } from '../sources/token-bucket.js'

export type { DestinationRateLimit } from '../core/destination.js'

/** The subset of ioredis the limiter uses (a `Redis` or a `Cluster` client fits). */
export type DestinationRateLimitRedis = TokenBucketRedis

/** Options of `DestinationRateLimiter`. */
export interface DestinationRateLimiterOptions {
  readonly redis: DestinationRateLimitRedis
  /** Prefix of the bucket keys; a destination's bucket is `<prefix><destination id>`. See `StreamKeys.destinationRateLimitPrefix`. */
  readonly prefix: string
}

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
    try {
      // the bucket is shared by every worker process on this Redis (src/sources/token-bucket.ts)
      const r = await takeTokens(this.options.redis, `${this.options.prefix}${destination}`,
        { ratePerSecond: limit.perSecond, burst: limit.burst, blockMs })
      return r.allowed ? 0 : r.waitMs
    } catch (err) {
      throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
        `the rate limit of destination "${destination}" could not be checked: ${(err as Error).message}; the delivery waits until Redis answers`, { cause: err })
    }
  }
}
