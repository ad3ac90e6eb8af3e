import type { Redis } from 'ioredis'
import { redisScript, runScript } from './redis-script.js'

// One hash per bucket: tokens, last refill (ms) and `until`, the end of a block (a receiver's Retry-After).
// Taking tokens and blocking run atomically in Redis on Redis's clock (TIME, not the callers'), so every process
// sharing the Redis shares the limit, whatever their clocks say. ARGV: rate per second, burst, cost, block ms.
// A block (ARGV[4] > 0) empties the bucket until now + that many ms instead of taking tokens. The key expires
// once a full bucket would have refilled (and the block ended), so an idle bucket costs nothing.
// Returns {allowed 1|0, wait ms, whole tokens left}.
const TOKEN_BUCKET = redisScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local blockMs = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'until')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
local untilMs = tonumber(state[3]) or 0
if tokens == nil or ts == nil then tokens = burst; ts = now end
local allowed = 0
local wait = 0
if blockMs > 0 then
  untilMs = math.max(untilMs, now + blockMs)
  tokens = 0
  ts = untilMs
elseif now < untilMs then
  wait = untilMs - now
else
  if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000); ts = now end
  if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
  else
    wait = math.ceil((cost - tokens) * 1000 / rate)
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts), 'until', tostring(untilMs))
redis.call('PEXPIRE', KEYS[1], math.max(0, untilMs - now) + math.ceil(burst * 1000 / rate) + 1000)
return { allowed, wait, math.floor(tokens) }
`)

/** The subset of ioredis the bucket uses (a `Redis` or a `Cluster` client fits). */
export interface TokenBucketRedis {
  call(command: string, ...args: (string | number)[]): Promise<unknown>
}

/** What one call to the bucket did. */
export interface TokenBucketAnswer {
  /** The tokens were taken (never after a block). */
  readonly allowed: boolean
  /** When not allowed: ms until enough tokens are back (or the block ends); 0 when allowed. */
  readonly waitMs: number
  /** Whole tokens left. */
  readonly remaining: number
}

/**
 * The token bucket at `key` in Redis (one Lua script; see TOKEN_BUCKET above): takes `cost` tokens when it has
 * them, or, with `blockMs` > 0, empties the bucket for that long. Shared by ingest's per-tool limit and the
 * per-destination limit of forwards. Arguments are the callers' to check. Rejects when Redis fails.
 *
 * @example
 * const { allowed, waitMs } = await takeTokens(redis, 'hookstream:ratelimit:gh-main', { ratePerSecond: 50, burst: 100 })
 */
export async function takeTokens(redis: TokenBucketRedis, key: string,
  bucket: { readonly ratePerSecond: number; readonly burst: number; readonly cost?: number; readonly blockMs?: number }): Promise<TokenBucketAnswer> {
  const reply = await runScript(redis as Pick<Redis, 'call'>, TOKEN_BUCKET, [key], [bucket.ratePerSecond, bucket.burst, bucket.cost ?? 1, bucket.blockMs ?? 0])
  const [allowed, waitMs, remaining] = reply as [number, number, number]
  return { allowed: allowed === 1, waitMs: Number(waitMs), remaining: Number(remaining) }
}
