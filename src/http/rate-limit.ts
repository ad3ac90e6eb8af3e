import { createHash } from 'node:crypto'

/** The subset of ioredis the rate limiter uses (ingest's Redis client fits). */
export interface RateLimitRedis {
  call(command: string, ...args: (string | number)[]): Promise<unknown>
}

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

// The bucket lives in one hash (tokens, last refill time in ms) and is updated atomically, so every ingest
// process sharing the Redis shares the limit. The clock is Redis's TIME, not the callers': processes with
// skewed clocks still agree. The key expires once a full bucket would have refilled, so idle tools cost nothing.
const SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { allowed, wait, math.floor(tokens) }
`
const SHA = createHash('sha1').update(SCRIPT).digest('hex')

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
  const args = [1, key, ratePerSecond, burst, cost]
  let reply: unknown
  try {
    reply = await redis.call('EVALSHA', SHA, ...args)
  } catch (err) {
    // first call on this server (or after SCRIPT FLUSH / a restart): send the script itself once
    if (!/NOSCRIPT/.test((err as Error)?.message ?? '')) throw err
    reply = await redis.call('EVAL', SCRIPT, ...args)
  }
  const [allowed, waitMs, remaining] = reply as [number, number, number]
  return { allowed: allowed === 1, retryAfterMs: Number(waitMs), remaining: Number(remaining) }
}
