import type { Redis } from 'ioredis'
import {
  DELIVERY_SEEN_MAX_LEVEL, checkDeliverySeenWindow, deliverySeenExpireAt, deliverySeenLevelKey, deliverySeenSlot, type StreamKeys,
} from './keys.js'
import { redisScript, runScript } from './redis-script.js'

/** Deliveries a hash of the "delivery seen" set is sized for: half of Redis's default hash-max-listpack-entries. */
export const DELIVERY_SEEN_PER_HASH = 256

// hashes of the quarter before that are counted to size the next one (shards 0–15 exist at every level)
const SAMPLED_SHARDS = 16

// the level of KEYS[1]'s quarter-window: the one already set, else the smallest that would have kept the quarter
// before (its level in KEYS[2], its first shards in KEYS[3…]) at ARGV[1] deliveries per hash, at most ARGV[2].
// Level 0, the layout before levels, when there is nothing to size from: a quarter that is past (no samples) or
// one whose quarter before has no level, because no process wrote in it or only versions before levels did (they
// may be writing this quarter too). Set once, by the first process that needs it, so that every process looks a
// delivery up where it was written.
const RESOLVE_LEVEL = redisScript(`local set = redis.call('GET', KEYS[1])
if set then return tonumber(set) end
local level = 0
local before = #KEYS > 2 and redis.call('GET', KEYS[2])
if before then
  local fields = 0
  for i = 3, #KEYS do fields = fields + redis.call('HLEN', KEYS[i]) end
  local perHash = fields / (#KEYS - 2)
  local target = tonumber(ARGV[1])
  while level < tonumber(ARGV[2]) and perHash * 2 ^ (tonumber(before) - level) > target do level = level + 1 end
end
redis.call('SET', KEYS[1], level)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return level`)

/**
 * The level of each quarter-window of the "delivery seen" set (how many hashes it is spread over, see
 * `deliverySeen`), as Redis records it. A quarter's level is set by the first process that writes in it, from how
 * full the quarter before was, and kept in `<deliveryPrefix><slot>:level` until its hashes expire; every process
 * reads the same one, so a re-send is looked up where its first delivery was written. Resolved once per quarter
 * and process (one script call; concurrent requests share it), then cached.
 *
 * @example
 * const levels = new DeliverySeenLevels(86400)
 * const now = Date.now()
 * const seen = deliverySeen(keys, tool.id, deliveryId, 86400, now, await levels.of(redis, keys, now))
 */
export class DeliverySeenLevels {
  // per key prefix (one per stream partition): the quarter-window last resolved and its levels
  private readonly cache = new Map<string, { readonly slot: number; levels: readonly number[] | Promise<readonly number[]> }>()

  /** @param windowSeconds the "delivery seen" window in whole seconds (WORKER_IDEMPOTENCY_TTL); a RangeError otherwise */
  constructor(private readonly windowSeconds: number) {
    checkDeliverySeenWindow('DeliverySeenLevels', windowSeconds)
  }

  /** The levels of the current quarter-window and the four before it, newest first (for `deliverySeen`). */
  of(redis: Pick<Redis, 'call'>, keys: StreamKeys, nowMs = Date.now()): readonly number[] | Promise<readonly number[]> {
    const slot = deliverySeenSlot(this.windowSeconds, nowMs)
    const known = this.cache.get(keys.deliveryPrefix)
    if (known?.slot === slot) return known.levels
    const entry: { readonly slot: number; levels: readonly number[] | Promise<readonly number[]> } = { slot, levels: [] }
    entry.levels = this.resolve(redis, keys, slot).then((levels) => {
      entry.levels = levels
      return levels
    }, (err: unknown) => {
      // a failed resolve is retried by the next request
      if (this.cache.get(keys.deliveryPrefix) === entry) this.cache.delete(keys.deliveryPrefix)
      throw err
    })
    // a request of the quarter before that arrives late resolves its own levels, it does not replace the newer ones
    if (!known || known.slot < slot) this.cache.set(keys.deliveryPrefix, entry)
    return entry.levels
  }

  private async resolve(redis: Pick<Redis, 'call'>, keys: StreamKeys, slot: number): Promise<readonly number[]> {
    const level = (s: number, sample: boolean) => {
      const shards = sample ? Array.from({ length: SAMPLED_SHARDS }, (_, i) => `${keys.deliveryPrefix}${s - 1}:${i}`) : []
      const keyList = sample ? [deliverySeenLevelKey(keys, s), deliverySeenLevelKey(keys, s - 1), ...shards] : [deliverySeenLevelKey(keys, s)]
      return runScript(redis, RESOLVE_LEVEL, keyList, [DELIVERY_SEEN_PER_HASH, DELIVERY_SEEN_MAX_LEVEL, deliverySeenExpireAt(this.windowSeconds, s)])
        .then(levelOf)
    }
    // the current quarter first: it reads whether the quarter before has a level before this sets one
    const current = await level(slot, true)
    return Object.freeze([current, ...await Promise.all([1, 2, 3, 4].map((back) => level(slot - back, false)))])
  }
}

// a level as Redis holds it; anything else (a key edited by hand) reads as 0 in every process alike
function levelOf(reply: unknown): number {
  const level = Number(reply)
  return Number.isInteger(level) && level >= 0 && level <= DELIVERY_SEEN_MAX_LEVEL ? level : 0
}
