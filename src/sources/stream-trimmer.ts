import type { StreamClient } from './stream-client.js'

/** The logger calls the trimmer makes (a pino logger fits). */
export interface TrimmerLogger {
  warn(obj: object, msg: string): void
  debug(obj: object, msg: string): void
}

/** Options of `startStreamTrimmer`. */
export interface StreamTrimmerOptions {
  /**
   * The stream to trim: a `StreamClient`, a `PartitionedStreamClient` (trims every partition), or anything with
   * `trimSafe`. When it has a `redis` client whose `status` is not `"ready"`, a tick is skipped instead of
   * queueing commands behind a reconnect.
   */
  readonly stream: Pick<StreamClient, 'trimSafe'> & { readonly redis?: { readonly status: string } }
  /** Time between the end of one trim and the start of the next, in ms (STREAM_TRIM_INTERVAL). */
  readonly intervalMs: number
  /** Newest entries kept even when every group is done with them (STREAM_TRIM_KEEP). @defaultValue 0 */
  readonly keep?: number
  /** Where trim errors (warn) and trimmed counts (debug) go. @defaultValue no logging */
  readonly logger?: TrimmerLogger
  /** Called after each successful trim with the number of entries removed (0 included). */
  readonly onTrimmed?: (removed: number) => void
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
 * it never throws out of the timer.
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
  let closed = false
  let closing: Promise<void> | undefined
  let running: Promise<void> = Promise.resolve()
  let timer: NodeJS.Timeout | undefined

  const trim = async () => {
    // a client that is reconnecting would queue the commands and hold close() until Redis is back: skip instead
    if (stream.redis && stream.redis.status !== 'ready') return
    try {
      const removed = await stream.trimSafe(keep > 0 ? { keep } : {})
      if (removed > 0) logger?.debug({ removed }, 'stream trimmed')
      onTrimmed?.(removed)
    } catch (err) {
      logger?.warn({ err_message: (err as Error)?.message ?? String(err) }, 'stream trim failed; trying again next interval')
    }
  }
  const schedule = () => {
    if (closed) return
    timer = setTimeout(() => {
      // a logger or onTrimmed that throws must not become an unhandled rejection or stop the schedule
      running = trim().catch(() => {}).then(schedule)
    }, intervalMs)
    timer.unref()
  }
  schedule()

  return {
    close: () => (closing ??= (async () => {
      closed = true
      clearTimeout(timer)
      await running
    })()),
  }
}
