import { takeTokens, type TokenBucketRedis } from '../sources/token-bucket.js'

/** The subset of ioredis the rate limiter uses (ingest's Redis client fits). */
export type RateLimitRedis = TokenBucketRedis

/** A token bucket: `burst` tokens at most, refilled at `ratePerSecond`. */
export interface RateLimitOptions {
  /** Tokens added per second (may be fractional, e.g. 0.5 = one request every 2 s). */
  readonly ratePerSecond: number
  /** Bucket size: requests allowed at once after a quiet period. @defaultValue ratePerSecond rounded up */
  readonly burst?: number
  /** Tokens this request takes. @defaultValue 1 */
  readonly cost?: number
}

/** The bucket's answer. */
export interface RateLimitResult {
  readonly allowed: boolean
  /** When refused: milliseconds until enough tokens are back; 0 when allowed. */
  readonly retryAfterMs: number
  /** Whole tokens left after this request. */
  readonly remaining: number
}

function check(name: string, value: number, min: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new RangeError(`rateLimit: "${name}" must be a finite number of at least ${min}; got ${value}`)
  }
}

/**
 * Takes `cost` tokens from the bucket at `key` if it has them (token bucket in Redis, one Lua script, shared
 * by every process using the same Redis). Rejects when Redis fails: callers answer 503 then, as for XADD.
 *
 * @example
 * const r = await rateLimit(redis, `${keys.deliveryPrefix}ratelimit:${tool.id}`, { ratePerSecond: 50, burst: 100 })
 * if (!r.allowed) res.setHeader('retry-after', String(Math.ceil(r.retryAfterMs / 1000))) // and answer 429
 */
export async function rateLimit(redis: RateLimitRedis, key: string, options: RateLimitOptions): Promise<RateLimitResult> {
  const { ratePerSecond } = options
  check('ratePerSecond', ratePerSecond, Number.MIN_VALUE)
  const burst = options.burst ?? Math.max(1, Math.ceil(ratePerSecond))
  check('burst', burst, 1)
  const cost = options.cost ?? 1
  check('cost', cost, 0)
  if (cost > burst) throw new RangeError(`rateLimit: "cost" (${cost}) must not exceed "burst" (${burst}), or the request could never pass`)
  if (typeof key !== 'string' || key === '') throw new RangeError('rateLimit: "key" must be a non-empty string')
  // the bucket is shared by every ingest process on this Redis (src/sources/token-bucket.ts)
  const r = await takeTokens(redis, key, { ratePerSecond, burst, cost })
  return { allowed: r.allowed, retryAfterMs: r.waitMs, remaining: r.remaining }
}
