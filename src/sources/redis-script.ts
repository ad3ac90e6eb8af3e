import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/** A Lua script and its SHA1, for `runScript`. */
export interface RedisScript {
  readonly source: string
  readonly sha: string
}

/**
 * Wraps a Lua script's source with its SHA1, once, at module load.
 *
 * @example
 * const GET_OR_ZERO = redisScript(`return redis.call('GET', KEYS[1]) or 0`)
 */
export function redisScript(source: string): RedisScript {
  return Object.freeze({ source, sha: createHash('sha1').update(source).digest('hex') })
}

/**
 * Runs `script` with EVALSHA, and sends its source (EVAL) only when the server does not know it yet (first call,
 * after SCRIPT FLUSH or a restart). On a Cluster, ioredis routes it by `keys`: keep them in one slot (a hash tag).
 *
 * @example
 * await runScript(redis, GET_OR_ZERO, ['counter'], [])
 */
export async function runScript(redis: Pick<Redis, 'call'>, script: RedisScript, keys: readonly string[],
  args: readonly (string | number | Buffer)[]): Promise<unknown> {
  try {
    return await redis.call('EVALSHA', script.sha, keys.length, ...keys, ...args)
  } catch (err) {
    if (!/NOSCRIPT/.test((err as Error)?.message ?? '')) throw err
    return redis.call('EVAL', script.source, keys.length, ...keys, ...args)
  }
}
