import type { Redis } from 'ioredis'
import { map, tap, type Observable } from 'rxjs'
import type { StreamMessage } from '../../src/core/envelope.js'
import { fromRedisStream, fromRedisStreamBatches } from '../../src/sources/from-redis-stream.js'

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
  /**
   * Your operator chain between the source and the end. It must settle every message (call `msg.settle()`
   * in its settling step); the drain ends when `events` messages were settled. @defaultValue settle at once
   */
  readonly chain?: (source: Observable<StreamMessage>) => Observable<unknown>
  /**
   * Read with `fromRedisStreamBatches` (the pipelines' source: each read is one batch) and settle each batch
   * at once; not with `chain`. @defaultValue false: `fromRedisStream`, message by message
   */
  readonly batches?: boolean
}

/**
 * Drains `events` pre-loaded entries through `fromRedisStream` and `chain` (default: a no-op that settles
 * each message at once), and resolves when the source closed with every ack flushed.
 *
 * @example
 * await drainSource({ redis, stream, group: 'webhook_workers', events: 25_000, batchSize: 500 })
 */
export async function drainSource(options: DrainSourceOptions): Promise<{ settled: number; drained: boolean }> {
  const abort = new AbortController()
  let settled = 0
  const errors: Error[] = []
  const closed = new Promise<{ drained: boolean }>((resolve) => {
    const counted = () => {
      settled++
      options.onProgress?.(settled)
      if (settled === options.events) abort.abort()
    }
    const sourceOptions = {
      redis: options.redis, stream: options.stream, group: options.group, consumer: 'bench',
      batchSize: options.batchSize, blockMs: 1000, signal: abort.signal,
      onError: (err: Error) => errors.push(err),
      onClosed: resolve,
    }
    if (options.batches) {
      if (options.chain !== undefined) throw new TypeError('drainSource: "batches" drains without a chain; pass one or the other')
      fromRedisStreamBatches(sourceOptions)
        .pipe(tap((msgs) => { for (const msg of msgs) { msg.settle(); counted() } }))
        .subscribe({ error: (err: Error) => { errors.push(err); abort.abort() } })
      return
    }
    const source = fromRedisStream(sourceOptions)
    const chain = options.chain
    // without a chain, settle in place; with one, count settles by wrapping each message's handle
    const out$ = chain === undefined
      ? source.pipe(tap((msg) => { msg.settle(); counted() }))
      : chain(source.pipe(map((msg) => countingSettles(msg, counted))))
    out$.subscribe({ error: (err: Error) => { errors.push(err); abort.abort() } })
  })
  const { drained } = await closed
  if (errors.length > 0) throw new Error(`drainSource: the source reported ${errors.length} errors, first: ${errors[0]?.message}`)
  return { settled, drained }
}

// the message as the chain sees it, with a settle that is counted once (a message's event is a getter on its
// prototype, so it is read through rather than copied)
function countingSettles(msg: StreamMessage, counted: () => void): StreamMessage {
  let once = false
  return {
    stream: msg.stream, streamId: msg.streamId, fields: msg.fields, deliveryCount: msg.deliveryCount, readAtMs: msg.readAtMs,
    ...(msg.traceparent === undefined ? {} : { traceparent: msg.traceparent }),
    get event() { return msg.event },
    get decodeError() { return msg.decodeError },
    settle: () => { msg.settle(); if (!once) { once = true; counted() } },
    nack: () => msg.nack(),
  }
}
