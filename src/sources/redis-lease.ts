import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { redisScript, runScript } from './redis-script.js'

// take the lease when it is free (SET NX PX), extend it when it is ours; otherwise say how long the holder has left
const ACQUIRE = redisScript(`if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0}
end
return {0, redis.call('PTTL', KEYS[1])}`)
// delete the lease only while it is still ours: after it lapsed, another holder's lease must survive our release
const RELEASE = redisScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

/** Options of `redisLease`. */
export interface RedisLeaseOptions {
  /** The client the lease key is written with (a `Redis` or a `Cluster`). */
  readonly redis: Pick<Redis, 'call'>
  /** The lease key (build it in `keys.ts`, e.g. `trimLeaseKey(stream)`). */
  readonly key: string
  /** How long (ms) the lease lasts unless it is renewed. */
  readonly ttlMs: number
}

/** What `acquire` found. */
export interface LeaseState {
  /** Whether this holder has the lease now (taken or renewed for another `ttlMs`). */
  readonly held: boolean
  /** When another holder has it: ms until its lease lapses unless renewed (-1: the key has no expiry). */
  readonly otherHolderLeftMs: number
}

/** A short lease on one Redis key, so that one of many processes does a job. */
export interface RedisLease {
  readonly key: string
  /** Takes the lease when nobody holds it, renews it when this holder does. */
  acquire(): Promise<LeaseState>
  /** Gives the lease up now if this holder still has it, so another takes over without waiting for the TTL. */
  release(): Promise<void>
}

/**
 * A lease on `key` (`SET key <token> NX PX ttlMs`), held by a random token of this process: one holder at a time,
 * renewed by `acquire`, given up by `release`, and lapsing by itself `ttlMs` after the last renewal when the holder
 * dies.
 *
 * @example
 * const lease = redisLease({ redis, key: trimLeaseKey('webhook_events'), ttlMs: 30_000 })
 * if ((await lease.acquire()).held) await trim()
 */
export function redisLease(options: RedisLeaseOptions): RedisLease {
  const { redis, key, ttlMs } = options
  const token = randomUUID()
  return {
    key,
    async acquire() {
      const [held, left] = (await runScript(redis, ACQUIRE, [key], [token, ttlMs])) as [number, number]
      return { held: held === 1, otherHolderLeftMs: held === 1 ? 0 : Number(left) }
    },
    async release() {
      await runScript(redis, RELEASE, [key], [token])
    },
  }
}
