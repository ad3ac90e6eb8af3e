import type { Redis } from 'ioredis'

/** A key that is not a stream, with its type and what MEMORY USAGE counts for it. */
export interface KeyMemory { readonly key: string; readonly type: string; readonly bytes: number }

/**
 * Every key matching `match` except streams, with the bytes MEMORY USAGE counts for it (SAMPLES 0: every field),
 * one pipelined round trip per SCAN page: what the dedupe window and other per-delivery keys cost.
 *
 * @example
 * const keys = await nonStreamKeys(redis, 'soak-1:*')
 * const bytes = keys.reduce((sum, k) => sum + k.bytes, 0)
 */
export async function nonStreamKeys(redis: Redis, match = '*'): Promise<KeyMemory[]> {
  const out: KeyMemory[] = []
  let cursor = '0'
  do {
    const [next, page] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000)
    cursor = next
    if (page.length === 0) continue
    const types = await pipelined(redis, page.map((key) => ['type', key]))
    const kept = page.map((key, i) => ({ key, type: String(types[i]) })).filter((k) => k.type !== 'stream')
    const sizes = await pipelined(redis, kept.map(({ key }) => ['memory', 'USAGE', key, 'SAMPLES', '0']))
    kept.forEach((k, i) => out.push({ ...k, bytes: Number(sizes[i]) }))
  } while (cursor !== '0')
  return out
}

/** The replies of `commands` sent as one pipeline; the first error rejects. */
export async function pipelined(redis: Redis, commands: string[][]): Promise<unknown[]> {
  if (commands.length === 0) return []
  const replies = (await redis.pipeline(commands).exec()) ?? []
  return replies.map(([err, reply]) => {
    if (err) throw err
    return reply
  })
}
