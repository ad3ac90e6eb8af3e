import { sql, type Kysely } from 'kysely'
import { PipelineError } from '../core/errors.js'
import type { Database } from './database.js'
import { classifyDatabaseError, isRowError, sqlState } from './database-error.js'
import { identityIn, identityOf, type EventIdentity } from './event-identity.js'

/** One `webhook_events` row as the event store writes it (every column but `processed_at`, which the database sets). */
export interface EventRow {
  /** The event (delivery) id; with `tool_id` the primary key, so a redelivered event is not stored twice. */
  readonly id: string
  /** The tool the event came through; part of the event's identity. */
  readonly tool_id: string
  readonly tenant_id: string
  readonly event_type: string
  readonly repository: string
  /** Any JSON value; stored as jsonb. */
  readonly payload: unknown
  /**
   * The raw JSON text of the StreamEvent the row comes from, as read from the stream. When given, PostgreSQL
   * takes the payload from it (`::jsonb -> 'payload'`) and `payload` is not serialized again: that
   * JSON.stringify of a just-parsed payload was the largest Node cost of storing an event.
   */
  readonly eventJson?: string
  /**
   * The payload's raw JSON text (a v2 stream entry's `payload` field). When given, PostgreSQL parses it
   * (`::jsonb`) and `payload` is not read: the store path never parses or serializes the payload in Node. Text
   * that is not JSON fails its row alone with `PAYLOAD_NOT_JSON`.
   */
  readonly payloadJson?: string
  /** The transform's result, when the tool has one; `undefined` or `null` store SQL NULL. */
  readonly transformed?: unknown
  /** The Redis stream entry id the event came from. */
  readonly stream_id: string
  /** When ingest accepted the event (the StreamEvent's `timestamp`). */
  readonly received_at: Date | string
  readonly forwarded_at?: Date | string | null
}

/** What `writeReturning` found: the failures, and which of the other rows were new. */
export interface EventStoreWriteResult {
  /** Rows that could not be stored, by index; always permanent (`STORE_REJECTED`). */
  readonly failures: ReadonlyMap<number, PipelineError>
  /** Indexes of rows this call inserted. Every other index without a failure was stored already (a duplicate). */
  readonly inserted: ReadonlySet<number>
}

/**
 * What the EventStore writes to.
 *
 * @example
 * new EventStore({ db: (await createDb({ url })).db })
 */
export interface EventStoreOptions {
  /** A Kysely instance from createDb, migrated (see migrateToLatest); the store does not close it. */
  readonly db: Kysely<Database>
  /**
   * How long the payload buffers kept for reuse between statements stay after the last statement ended; then
   * they are let go, so a burst of large batches does not hold its memory for the process's life. @defaultValue 30000
   */
  readonly spareIdleMs?: number
}

// one statement's rows and payload bytes: a Bind message must stay far below PostgreSQL's 1 GB message limit
const ROWS_PER_STATEMENT = 1_000
const PAYLOAD_BYTES_PER_STATEMENT = 64 * 1024 * 1024
// payload buffers kept for reuse between statements: as many as statements usually in flight, none large
const SPARE_BUFFERS = 4
const SPARE_BYTES_MAX = 16 * 1024 * 1024

/** A row's values as the INSERT takes them: the payload as JSON text (or the whole StreamEvent's, `whole`) and its UTF-8 length. */
function toValues(row: EventRow) {
  const whole = row.payloadJson === undefined && row.eventJson !== undefined
  // JSON text, not the value: PostgreSQL parses it (`::jsonb`), so Node never serializes a payload it has as text
  const payload = row.payloadJson ?? row.eventJson ?? JSON.stringify(row.payload ?? null)
  const transformed = row.transformed === undefined || row.transformed === null ? null : JSON.stringify(row.transformed)
  return { whole, payload, bytes: Buffer.byteLength(payload), transformed }
}

interface Pending { readonly index: number; readonly row: EventRow; readonly values: ReturnType<typeof toValues> }

function rejected(row: EventRow, reason: string, cause: unknown): PipelineError {
  if (row.payloadJson !== undefined && sqlState(cause) === '22P02' && /type json/.test((cause as Error).message)) {
    return new PipelineError('permanent', 'PAYLOAD_NOT_JSON',
      `the payload of event "${row.id}" (tool "${row.tool_id}") is not valid JSON: ${reason}; the event is dead-lettered — ` +
      'the producer must write the payload\'s JSON text in the stream entry\'s "payload" field', { cause })
  }
  return new PipelineError('permanent', 'STORE_REJECTED',
    `PostgreSQL rejected event "${row.id}" (tool "${row.tool_id}") for webhook_events: ${reason}; ` +
    'the event is dead-lettered — fix its payload or the producer and re-queue it', { cause })
}

/**
 * The event store: every insert into and update of `webhook_events` (retention only deletes): the stored events,
 * their forward state (`markForwarded`) and the forward-mode duplicate check (`forwardedAmong`). It has the `Sink`
 * shape (`write`, `close`).
 *
 * Stores events in `webhook_events` with one `INSERT … SELECT … ON CONFLICT (tool_id, id) DO NOTHING` per chunk
 * of up to 1,000 rows or 64 MiB of payloads, with two parameters: the small columns as JSON rows, the payloads
 * as bytes. A row PostgreSQL rejects (e.g. a `\u0000` in a
 * jsonb payload) fails alone with `STORE_REJECTED`; an unreachable database rejects the whole call with
 * `DATABASE_UNAVAILABLE` so the pipeline holds the events instead of dead-lettering them.
 *
 * @example
 * const store = new EventStore({ db })
 * const { failures, inserted } = await store.writeReturning(rows)
 * const duplicates = rows.length - failures.size - inserted.size
 */
export class EventStore {
  private readonly db: Kysely<Database>
  // payload buffers of finished statements, reused (see `insert`)
  private readonly spare: Buffer[] = []
  private readonly spareIdleMs: number
  private spareUsedAt = 0
  private spareTimer: NodeJS.Timeout | undefined
  private closed = false
  private closing: Promise<void> | undefined

  constructor(options: EventStoreOptions) {
    if (!options?.db) throw new TypeError('EventStore: "db" must be a Kysely instance (see createDb)')
    this.db = options.db
    this.spareIdleMs = options.spareIdleMs ?? 30_000
    if (!Number.isInteger(this.spareIdleMs) || this.spareIdleMs < 1 || this.spareIdleMs > 2_147_483_647) {
      throw new RangeError(`EventStore: "spareIdleMs" must be an integer from 1 to 2147483647; got ${options.spareIdleMs}`)
    }
  }

  /** Bytes of payload buffers kept for reuse by the next statements (at most 4 of at most 16 MiB; 0 once idle). */
  get spareBytes(): number {
    return this.spare.reduce((sum, b) => sum + b.length, 0)
  }

  /** Stores the rows; resolves with the failures by index (see `writeReturning` for which rows were new). */
  async write(items: readonly EventRow[]): Promise<ReadonlyMap<number, PipelineError>> {
    return (await this.writeReturning(items)).failures
  }

  /**
   * Stores the rows and tells which were inserted now; rows neither inserted nor failed were stored before.
   * A batch holding one (tool, id) twice inserts the first and counts the second as a duplicate.
   */
  async writeReturning(items: readonly EventRow[]): Promise<EventStoreWriteResult> {
    if (this.closed) throw new Error('EventStore: write after close(); create a new store')
    const failures = new Map<number, PipelineError>()
    const inserted = new Set<number>()
    const pending: Pending[] = []
    items.forEach((row, index) => {
      try {
        pending.push({ index, row, values: toValues(row) })
      } catch (err) {
        failures.set(index, rejected(row, `its payload or transform result cannot be written as JSON (${(err as Error).message})`, err))
      }
    })
    let start = 0
    let bytes = 0
    for (let end = 0; end < pending.length; end++) {
      bytes += (pending[end] as Pending).values.bytes
      if (end + 1 - start === ROWS_PER_STATEMENT || bytes >= PAYLOAD_BYTES_PER_STATEMENT || end + 1 === pending.length) {
        await this.writeChunk(pending.slice(start, end + 1), failures, inserted)
        start = end + 1
        bytes = 0
      }
    }
    return { failures, inserted }
  }

  private async writeChunk(chunk: readonly Pending[], failures: Map<number, PipelineError>, inserted: Set<number>): Promise<void> {
    let ids: Set<string>
    try {
      ids = await this.insert(chunk)
    } catch (err) {
      if (!isRowError(err)) throw classifyDatabaseError(err, `storing ${chunk.length} events in webhook_events`)
      // one bad row failed the whole statement: find it by storing the chunk row by row
      for (const one of chunk) {
        try {
          if ((await this.insert([one])).size > 0) inserted.add(one.index)
        } catch (rowErr) {
          if (!isRowError(rowErr)) throw classifyDatabaseError(rowErr, `storing event "${one.row.id}" in webhook_events`)
          failures.set(one.index, rejected(one.row, `${(rowErr as Error).message} (SQLSTATE ${sqlState(rowErr)})`, rowErr))
        }
      }
      return
    }
    for (const { index, row } of chunk) {
      // the first index of an identity gets the insert; a repeat in the same batch is a duplicate
      if (ids.delete(identityOf(row))) inserted.add(index)
    }
  }

  /**
   * One INSERT for the chunk whatever its size: the small columns as one JSON array of rows, and the payloads'
   * UTF-8 bytes one after another in one bytea parameter (no escaping of 10 KB JSON texts in Node), each row's
   * cut from it by start and length and parsed by PostgreSQL.
   */
  private async insert(chunk: readonly Pending[]): Promise<Set<string>> {
    let size = 0
    for (const p of chunk) size += p.values.bytes
    const buffer = this.takeBuffer(size)
    const payloads = buffer.subarray(0, size)
    const starts: number[] = []
    let offset = 0
    for (const p of chunk) {
      starts.push(offset + 1)
      offset += payloads.write(p.values.payload, offset, 'utf8')
    }
    // the small columns as one JSON array of rows: JSON.stringify is native, where pg would escape each array element in JS
    const columns = JSON.stringify(chunk.map((p, i) => ({
      id: p.row.id, tool_id: p.row.tool_id, tenant_id: p.row.tenant_id, event_type: p.row.event_type, repository: p.row.repository,
      whole: p.values.whole, start: starts[i], bytes: p.values.bytes, transformed: p.values.transformed,
      stream_id: p.row.stream_id, received_at: p.row.received_at, forwarded_at: p.row.forwarded_at ?? null,
    })))
    const rows = sql`SELECT r.id, r.tool_id, r.tenant_id, r.event_type, r.repository,
        CASE WHEN r.whole THEN j.json -> 'payload' ELSE j.json END, r.transformed::jsonb,
        r.stream_id, r.received_at, r.forwarded_at
      FROM json_to_recordset(${columns}::json) AS r(id text, tool_id text, tenant_id text, event_type text, repository text,
        whole boolean, start int, bytes int, transformed text, stream_id text, received_at timestamptz, forwarded_at timestamptz)
      CROSS JOIN (SELECT ${payloads}::bytea AS all_bytes) AS b
      CROSS JOIN LATERAL (SELECT convert_from(substring(b.all_bytes from r.start for r.bytes), 'UTF8')::jsonb AS json) AS j`
    try {
      const result = await this.db.insertInto('webhook_events')
        .columns(['id', 'tool_id', 'tenant_id', 'event_type', 'repository', 'payload', 'transformed', 'stream_id', 'received_at', 'forwarded_at'])
        .expression(rows).onConflict((oc) => oc.columns(['tool_id', 'id']).doNothing()).returning(['tool_id', 'id']).execute()
      return new Set(result.map(identityOf))
    } finally {
      // the driver copied the bytes into its message when it sent the statement; settled, it holds none
      this.giveBack(buffer)
    }
  }

  // A buffer of at least `size` bytes for a statement's payloads. Allocating a fresh one for every statement
  // was a third of the store path's off-heap allocation, and off-heap allocation is what starts V8's major GCs
  // (external memory pressure); a few buffers are kept for reuse, none larger than SPARE_BYTES_MAX.
  private takeBuffer(size: number): Buffer {
    const i = this.spare.findIndex((b) => b.length >= size)
    if (i >= 0) return this.spare.splice(i, 1)[0] as Buffer
    return Buffer.allocUnsafeSlow(Math.max(size, Math.min(2 * size, SPARE_BYTES_MAX), 64 * 1024))
  }

  private giveBack(buffer: Buffer): void {
    if (this.closed || buffer.length > SPARE_BYTES_MAX || this.spare.length >= SPARE_BUFFERS) return
    this.spare.push(buffer)
    this.spareUsedAt = performance.now()
    if (!this.spareTimer) this.releaseSpareWhenIdle(this.spareIdleMs)
  }

  // one timer while spares are kept, not one per statement: when it fires early (a statement ended since it was
  // set) it waits out the rest of the idle time
  private releaseSpareWhenIdle(delayMs: number): void {
    this.spareTimer = setTimeout(() => {
      const idle = performance.now() - this.spareUsedAt
      if (idle < this.spareIdleMs) return this.releaseSpareWhenIdle(Math.ceil(this.spareIdleMs - idle))
      this.spareTimer = undefined
      this.spare.length = 0
    }, delayMs)
    // a cleanup, not work: it keeps no process alive
    this.spareTimer.unref()
  }

  /**
   * Sets `forwarded_at` on the given events (tool id and event id each) in one UPDATE; resolves with the
   * number of rows updated. Rejects with a PipelineError from the database-error classifier.
   *
   * @example
   * await store.markForwarded([{ tool_id: 'gh-main', id: 'evt-1' }], new Date())
   */
  async markForwarded(events: readonly EventIdentity[], at: Date = new Date()): Promise<number> {
    if (this.closed) throw new Error('EventStore: markForwarded after close(); create a new store')
    if (events.length === 0) return 0
    try {
      const result = await this.db.updateTable('webhook_events').set({ forwarded_at: at })
        .where(identityIn(events)).executeTakeFirst()
      return Number(result.numUpdatedRows)
    } catch (err) {
      throw classifyDatabaseError(err, `marking ${events.length} events forwarded`)
    }
  }

  /**
   * Which of the given events already have `forwarded_at` set, as `identityOf` strings. Rejects with a
   * PipelineError from the database-error classifier.
   *
   * @example
   * const done = await store.forwardedAmong([{ tool_id: 'gh-main', id: 'evt-1' }])
   */
  async forwardedAmong(events: readonly EventIdentity[]): Promise<Set<string>> {
    if (events.length === 0) return new Set()
    try {
      const rows = await this.db.selectFrom('webhook_events').select(['tool_id', 'id'])
        .where(identityIn(events)).where('forwarded_at', 'is not', null).execute()
      return new Set(rows.map(identityOf))
    } catch (err) {
      throw classifyDatabaseError(err, `checking whether ${events.length} stored events were forwarded`)
    }
  }

  /** Stops accepting writes. The Kysely instance belongs to the caller and stays open. */
  close(): Promise<void> {
    this.closed = true
    clearTimeout(this.spareTimer)
    this.spareTimer = undefined
    this.spare.length = 0
    return (this.closing ??= Promise.resolve())
  }
}
