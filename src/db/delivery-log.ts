import type { Kysely } from 'kysely'
import { positiveInteger } from '../core/positive-integer.js'
import type { Database } from './database.js'
import { unavailableOr } from './database-error.js'

/** One HTTP attempt to deliver an event to a destination, as `DeliveryLog.record` takes it. */
export interface DeliveryAttemptRecord {
  readonly toolId: string
  readonly eventId: string
  /** The destination's id (the tool's id for its `forward_url`). */
  readonly destinationId: string
  /** 1 for the first attempt. */
  readonly attempt: number
  readonly startedAt: Date
  readonly durationMs: number
  /** The response status; absent when no response came. */
  readonly httpStatus?: number
  /** `transient` or `permanent`; absent for a success. */
  readonly errorClass?: string
  readonly errorCode?: string
  /** The first 1 KiB of the response body (longer text is cut). */
  readonly responseBody?: string
  /** When the next attempt is due; absent when none follows. */
  readonly nextAttemptAt?: Date
}

/** Options of `DeliveryLog`. */
export interface DeliveryLogOptions {
  readonly db: Kysely<Database>
  /** Rows per INSERT; a queue this long is written at once. @defaultValue 500 */
  readonly maxBatch?: number
  /** Time (ms) a recorded attempt waits at most before it is written. @defaultValue 1000 */
  readonly flushMs?: number
  /**
   * Attempts kept in memory while PostgreSQL does not take them; past this the oldest are dropped (and counted
   * by `onDropped`) so the log never grows without bound. @defaultValue 10000
   */
  readonly maxQueue?: number
  /** Told how many queued attempts were dropped (for `webhook_delivery_log_dropped_total`). */
  readonly onDropped?: (count: number) => void
  /** Told about a failed write (PostgreSQL down); the rows stay queued for the next flush. @defaultValue ignore */
  readonly onError?: (err: Error) => void
}

const MAX_BODY_CHARS = 1024
const positive = positiveInteger.bind(undefined, 'DeliveryLog')

// PostgreSQL text cannot hold U+0000; a receiver's body may
function storableBody(body: string | undefined): string | null {
  return body === undefined ? null : body.slice(0, MAX_BODY_CHARS).replaceAll('\u0000', '\uFFFD')
}

/**
 * Writes delivery attempts to `webhook_deliveries` off the hot path: `record` only queues, and the queue is
 * written in multi-row INSERTs when it holds `maxBatch` rows or `flushMs` after the oldest arrived. A failed
 * write keeps the rows queued; past `maxQueue` the oldest are dropped, so a PostgreSQL outage costs log rows,
 * never memory or delivery speed.
 *
 * @example
 * const log = new DeliveryLog({ db, onDropped: (n) => metrics.deliveryLogDropped(n) })
 * log.record({ toolId: 'gh-main', eventId: 'msg_1', destinationId: 'gh-main', attempt: 1, startedAt: new Date(), durationMs: 12, httpStatus: 200 })
 * await log.close()
 */
export class DeliveryLog {
  private readonly db: Kysely<Database>
  private readonly maxBatch: number
  private readonly flushMs: number
  private readonly maxQueue: number
  private readonly options: DeliveryLogOptions
  private queue: DeliveryAttemptRecord[] = []
  private writing = 0
  private timer: NodeJS.Timeout | undefined
  private flushing: Promise<void> | undefined
  private closing: Promise<void> | undefined

  constructor(options: DeliveryLogOptions) {
    this.options = options
    this.db = options.db
    this.maxBatch = positive('maxBatch', options.maxBatch, 500)
    this.flushMs = positive('flushMs', options.flushMs, 1000)
    this.maxQueue = positive('maxQueue', options.maxQueue, 10_000)
  }

  /** Attempts not written yet: waiting, or in the INSERT running now. At most `maxQueue`. */
  get queued(): number {
    return this.queue.length + this.writing
  }

  /** Queues one attempt; never waits and never throws. After `close()` attempts are dropped and counted. */
  record(attempt: DeliveryAttemptRecord): void {
    if (this.closing) { this.options.onDropped?.(1); return }
    this.queue.push(attempt)
    this.trim()
    if (this.queue.length >= this.maxBatch) void this.flush()
    else this.schedule()
  }

  /** Writes what is queued now (joins a flush in progress first); resolves even when PostgreSQL is down. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing
    if (this.queue.length === 0) return
    this.flushing = this.writeQueued().finally(() => { this.flushing = undefined })
    await this.flushing
  }

  /** Writes what is queued (one try) and stops the timer; a second call returns the same promise. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.timer)
      this.timer = undefined
      await this.flush()
      if (this.queue.length > 0) this.options.onDropped?.(this.queue.length)
      this.queue = []
    })()
    return this.closing
  }

  private schedule(): void {
    if (this.timer) return
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush() }, this.flushMs)
    this.timer.unref()
  }

  private trim(): void {
    const over = Math.min(this.queue.length, this.queue.length + this.writing - this.maxQueue)
    if (over > 0) {
      this.queue.splice(0, over)
      this.options.onDropped?.(over)
    }
  }

  private async writeQueued(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch)
      this.writing = batch.length
      try {
        await this.db.insertInto('webhook_deliveries').values(batch.map((a) => ({
          tool_id: a.toolId, event_id: a.eventId, destination_id: a.destinationId, attempt: a.attempt,
          started_at: a.startedAt, duration_ms: Math.max(0, Math.round(a.durationMs)), http_status: a.httpStatus ?? null,
          error_class: a.errorClass ?? null, error_code: a.errorCode ?? null, response_body: storableBody(a.responseBody),
          next_attempt_at: a.nextAttemptAt ?? null,
        }))).execute()
      } catch (err) {
        // keep the rows for the next flush, oldest first, within the bound
        this.writing = 0
        this.queue = [...batch, ...this.queue]
        this.trim()
        this.options.onError?.(unavailableOr(err, 'writing delivery attempts to webhook_deliveries') as Error)
        if (!this.closing) this.schedule()
        return
      }
      this.writing = 0
    }
  }
}
