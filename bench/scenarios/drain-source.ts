import type { Redis } from 'ioredis'
import { tap } from 'rxjs'
import { fromRedisStream } from '../../src/sources/from-redis-stream.js'

/** Options of `drainSource`. */
export interface DrainSourceOptions {
  readonly redis: Redis
  readonly stream: string
  readonly group: string
  /** Stop after this many messages were settled. */
  readonly events: number
  /** fromRedisStream's batchSize (XREADGROUP COUNT, and maxInFlight). */
  readonly batchSize: number
  readonly onProgress?: (done: number) => void
}

/**
 * Drains `events` pre-loaded entries through `fromRedisStream` with a no-op downstream that settles each
 * message at once, and resolves when the source closed with every ack flushed.
 *
 * @example
 * await drainSource({ redis, stream, group: 'webhook_workers', events: 25_000, batchSize: 500 })
 */
export async function drainSource(options: DrainSourceOptions): Promise<{ settled: number; drained: boolean }> {
  const abort = new AbortController()
  let settled = 0
  const errors: Error[] = []
  const closed = new Promise<{ drained: boolean }>((resolve) => {
    fromRedisStream({
      redis: options.redis, stream: options.stream, group: options.group, consumer: 'bench',
      batchSize: options.batchSize, blockMs: 1000, signal: abort.signal,
      onError: (err) => errors.push(err),
      onClosed: resolve,
    }).pipe(tap((msg) => {
      msg.settle()
      settled++
      options.onProgress?.(settled)
      if (settled >= options.events) abort.abort()
    })).subscribe({ error: (err: Error) => { errors.push(err); abort.abort() } })
  })
  const { drained } = await closed
  if (errors.length > 0) throw new Error(`drainSource: the source reported ${errors.length} errors, first: ${errors[0]?.message}`)
  return { settled, drained }
}
