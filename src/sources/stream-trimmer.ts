import { trimLeaseKey } from './keys.js'
import { redisLease, type RedisLease } from './redis-lease.js'
import type { RedisClient, StreamClient } from './stream-client.js'

/** The logger calls the trimmer makes (a pino logger fits). */
export interface TrimmerLogger {
  warn(obj: object, msg: string): void
  debug(obj: object, msg: string): void
}

/** The lease that lets one of several trimmers of the same stream trim it (`lease` of `startStreamTrimmer`). */
export interface TrimLeaseOptions {
  /** Key of the lease. @defaultValue `trimLeaseKey(stream.stream)`, e.g. "webhook_events:trim-lease" */
  readonly key?: string
  /**
   * How long (ms) the lease lasts unless renewed. The holder renews it before each trim and every `ttlMs / 3`
   * while a trim runs; keep it above `intervalMs`. When the holder stops without giving it up (a crash), another
   * trimmer takes over within this time. @defaultValue 3 × intervalMs
   */
  readonly ttlMs?: number
}

/** Options of `startStreamTrimmer`. */
export interface StreamTrimmerOptions {
  /**
   * The stream to trim: a `StreamClient`, a `PartitionedStreamClient` (trims every partition), or anything with
   * `trimSafe`. When it has a `redis` client whose `status` is not `"ready"`, a tick is skipped instead of
   * queueing commands behind a reconnect. Its `redis` and `stream` name also give the lease its client and key.
   */
  readonly stream: Pick<StreamClient, 'trimSafe'> & {
    readonly redis?: { readonly status: string } & Partial<Pick<RedisClient, 'call'>>
    readonly stream?: string
  }
  /** Time between the end of one trim and the start of the next, in ms (STREAM_TRIM_INTERVAL). */
  readonly intervalMs: number
  /** Newest entries kept even when every group is done with them (STREAM_TRIM_KEEP). @defaultValue 0 */
  readonly keep?: number
  /** Where trim errors (warn) and trimmed counts (debug) go. @defaultValue no logging */
  readonly logger?: TrimmerLogger
  /**
   * Called after each successful trim with the number of entries removed (0 included); not called for an
   * interval in which another trimmer holds the lease.
   */
  readonly onTrimmed?: (removed: number) => void
  /**
   * Several processes trimming one stream take turns through a short Redis lease, so one of them trims per
   * interval instead of all; `false` makes this trimmer trim on every interval regardless.
   * @defaultValue a lease on `trimLeaseKey(stream.stream)` when `stream` has a `redis` client and a `stream`
   * name (a `StreamClient` has both); none otherwise
   */
  readonly lease?: TrimLeaseOptions | false
}

/** A running trimmer; `close()` stops it and waits for a trim in progress (idempotent). */
export interface StreamTrimmer {
  close(): Promise<void>
}

/**
 * Trims the stream every `intervalMs` with `trimSafe`: entries every consumer group has acked (older than each
 * group's oldest pending entry and its last-delivered id) are removed, pending and undelivered ones stay, and
 * the newest `keep` stay regardless. Runs never overlap (the next is scheduled when one ends), the timer does
 * not keep the process alive, and a failing trim (Redis down) is logged at warn and tried again next interval;
 * it never throws out of the timer. When several processes run a trimmer on the same stream, the one holding the
 * lease trims and the others skip their turn; `close()` gives the lease up, so another takes over at its next
 * interval (after a crash: once the lease lapses, within `lease.ttlMs`).
 *
 * @example
 * const trimmer = startStreamTrimmer({ stream: new StreamClient({ redis, stream: 'webhook_events' }), intervalMs: 10_000, logger })
 * // … on shutdown, before the Redis connection closes:
 * await trimmer.close()
 */
export function startStreamTrimmer(options: StreamTrimmerOptions): StreamTrimmer {
  const { stream, intervalMs, logger, onTrimmed } = options
  const keep = options.keep ?? 0
  if (typeof stream?.trimSafe !== 'function') {
    throw new RangeError('startStreamTrimmer: "stream" must be a StreamClient (an object with trimSafe)')
  }
  if (!Number.isInteger(intervalMs) || intervalMs < 10 || intervalMs > 2_147_483_647) {
    throw new RangeError(`startStreamTrimmer: "intervalMs" must be an integer from 10 to 2147483647; got ${intervalMs}`)
  }
  if (!Number.isSafeInteger(keep) || keep < 0) {
    throw new RangeError(`startStreamTrimmer: "keep" must be an integer of at least 0; got ${keep}`)
  }
  const lease = trimmerLease(options)
  let closed = false
  let closing: Promise<void> | undefined
  let running: Promise<void> = Promise.resolve()
  let timer: NodeJS.Timeout | undefined

  let holding = false
  // the ms until the next tick: an interval, or sooner when another holder's lease lapses before that
  const trim = async (): Promise<number> => {
    // a client that is reconnecting would queue the commands and hold close() until Redis is back: skip instead
    if (stream.redis && stream.redis.status !== 'ready') return intervalMs
    let renewal: NodeJS.Timeout | undefined
    try {
      if (lease) {
        const state = await lease.lease.acquire()
        if (state.held !== holding) logger?.debug({ lease: lease.lease.key, held: state.held }, state.held ? 'trim lease taken' : 'trim lease lost')
        holding = state.held
        if (!state.held) return state.otherHolderLeftMs >= 0 ? Math.max(10, Math.min(intervalMs, state.otherHolderLeftMs + 1)) : intervalMs
        renewal = setInterval(() => { lease.lease.acquire().catch(() => {}) }, Math.max(10, Math.floor(lease.ttlMs / 3)))
        renewal.unref()
      }
      const removed = await stream.trimSafe(keep > 0 ? { keep } : {})
      if (removed > 0) logger?.debug({ removed }, 'stream trimmed')
      onTrimmed?.(removed)
    } catch (err) {
      logger?.warn({ err_message: (err as Error)?.message ?? String(err) }, 'stream trim failed; trying again next interval')
    } finally {
      clearInterval(renewal)
    }
    return intervalMs
  }
  const schedule = (delayMs: number) => {
    if (closed) return
    timer = setTimeout(() => {
      // a logger or onTrimmed that throws must not become an unhandled rejection or stop the schedule
      running = trim().catch(() => intervalMs).then(schedule)
    }, delayMs)
    timer.unref()
  }
  schedule(intervalMs)

  return {
    close: () => (closing ??= (async () => {
      closed = true
      clearTimeout(timer)
      await running
      // give the lease up, so another trimmer need not wait for it to lapse; a reconnecting client would queue this
      if (lease && holding && stream.redis?.status === 'ready') await lease.lease.release().catch(() => {})
    })()),
  }
}

function trimmerLease(options: StreamTrimmerOptions): { lease: RedisLease; ttlMs: number } | undefined {
  const { stream, intervalMs } = options
  if (options.lease === false) return undefined
  const redis = stream.redis
  const key = options.lease?.key ?? (typeof stream.stream === 'string' ? trimLeaseKey(stream.stream) : undefined)
  if (typeof redis?.call !== 'function' || key === undefined) {
    if (options.lease === undefined) return undefined
    throw new RangeError('startStreamTrimmer: "lease" needs a stream with a redis client and a stream name (a StreamClient), or lease.key with such a client; pass lease: false to trim without one')
  }
  if (key === '') throw new RangeError('startStreamTrimmer: "lease.key" must be a non-empty key name')
  const ttlMs = options.lease?.ttlMs ?? Math.min(3 * intervalMs, 2_147_483_647)
  if (!Number.isInteger(ttlMs) || ttlMs < 10 || ttlMs > 2_147_483_647) {
    throw new RangeError(`startStreamTrimmer: "lease.ttlMs" must be an integer from 10 to 2147483647 (above intervalMs); got ${ttlMs}`)
  }
  return { lease: redisLease({ redis: { call: redis.call.bind(redis) } as Pick<RedisClient, 'call'>, key, ttlMs }), ttlMs }
}
