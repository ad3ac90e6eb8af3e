import type { Redis } from 'ioredis'

/**
 * What Redis keeps across a restart, read from its configuration:
 * - `aof`: the append-only file is on (an acknowledged write survives a restart; with `appendfsync everysec`
 *   up to about one second of writes can be lost in a power failure);
 * - `rdb`: only snapshots (`save`): everything written since the last snapshot is lost on a restart;
 * - `none`: nothing on disk: every queued event, parked retry and idempotency marker is lost on a restart;
 * - `unknown`: Redis refused `CONFIG GET` (managed services often do).
 */
export type RedisDurabilityMode = 'aof' | 'rdb' | 'none' | 'unknown'

/** The result of `readRedisDurability`. */
export interface RedisDurability {
  readonly mode: RedisDurabilityMode
  /** `appendfsync` (always, everysec, no) when AOF is on. */
  readonly appendfsync?: string
  /** The `save` schedule ("3600 1 300 100 …"), empty when snapshots are off. */
  readonly save?: string
  /** Why the mode is `unknown`. */
  readonly error?: string
  /**
   * The `maxmemory-policy` when `maxmemory` is set and the policy lets a full Redis evict keys: `allkeys-*` can
   * drop the stream itself, and with it every queued event; `volatile-*` drops keys with a TTL, which are
   * hookstream's duplicate checks (the delivery-seen window, claim and done markers, the fan-out marker). Absent
   * for `noeviction` (Redis's default: a full Redis refuses writes and ingest answers 503) and no `maxmemory`.
   */
  readonly evicts?: string
}

const configValue = (reply: unknown): string | undefined =>
  (Array.isArray(reply) && reply.length >= 2 ? String(reply[1]) : undefined)

/**
 * Reads Redis's persistence settings (`CONFIG GET appendonly`, `appendfsync`, `save`) and its eviction policy
 * (`maxmemory-policy`, `maxmemory`) once, for the start-up warning and `/health`. Never rejects: a refused CONFIG (a managed Redis, an ACL) reads as `unknown`. On a
 * cluster, pass any master's client; the nodes are expected to share one configuration.
 *
 * @example
 * const durability = await readRedisDurability(redis) // { mode: 'aof', appendfsync: 'everysec', save: '' }
 */
export async function readRedisDurability(redis: Pick<Redis, 'call'>): Promise<RedisDurability> {
  try {
    const appendonly = configValue(await redis.call('CONFIG', 'GET', 'appendonly'))
    const appendfsync = configValue(await redis.call('CONFIG', 'GET', 'appendfsync'))
    const save = configValue(await redis.call('CONFIG', 'GET', 'save')) ?? ''
    if (appendonly === undefined) return { mode: 'unknown', error: 'CONFIG GET appendonly returned nothing' }
    const policy = configValue(await redis.call('CONFIG', 'GET', 'maxmemory-policy')) ?? ''
    const maxmemory = configValue(await redis.call('CONFIG', 'GET', 'maxmemory')) ?? '0'
    const evicts = policy !== '' && policy !== 'noeviction' && maxmemory !== '0' ? { evicts: policy } : {}
    if (appendonly === 'yes') return { mode: 'aof', ...(appendfsync ? { appendfsync } : {}), save, ...evicts }
    return { mode: save.trim() === '' ? 'none' : 'rdb', save, ...evicts }
  } catch (err) {
    return { mode: 'unknown', error: (err as Error).message }
  }
}
