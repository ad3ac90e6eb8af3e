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
}

const COLUMNS = 10
// PostgreSQL's wire protocol counts bind parameters in 16 bits
const MAX_BIND_PARAMETERS = 65_535
const ROWS_PER_STATEMENT = Math.floor(MAX_BIND_PARAMETERS / COLUMNS)

function toValues(row: EventRow) {
  return {
    id: row.id, tool_id: row.tool_id, tenant_id: row.tenant_id, event_type: row.event_type, repository: row.repository,
    // JSON text, not the value: pg would turn a JS array into a PostgreSQL array literal
    payload: row.payloadJson !== undefined ? sql<string>`${row.payloadJson}::jsonb`
      : row.eventJson !== undefined ? sql<string>`(${row.eventJson}::jsonb -> 'payload')` : JSON.stringify(row.payload ?? null),
    transformed: row.transformed === undefined || row.transformed === null ? null : JSON.stringify(row.transformed),
    stream_id: row.stream_id, received_at: row.received_at, forwarded_at: row.forwarded_at ?? null,
  }
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
 * Stores events in `webhook_events` with one multi-row `INSERT … ON CONFLICT (tool_id, id) DO NOTHING` per chunk
 * (chunks stay under PostgreSQL's 65,535 bind parameters). A row PostgreSQL rejects (e.g. a `\u0000` in a
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
  private closed = false
  private closing: Promise<void> | undefined

  constructor(options: EventStoreOptions) {
    if (!options?.db) throw new TypeError('EventStore: "db" must be a Kysely instance (see createDb)')
    this.db = options.db
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
    for (let start = 0; start < pending.length; start += ROWS_PER_STATEMENT) {
      await this.writeChunk(pending.slice(start, start + ROWS_PER_STATEMENT), failures, inserted)
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

  private async insert(chunk: readonly Pending[]): Promise<Set<string>> {
    const result = await this.db.insertInto('webhook_events').values(chunk.map((p) => p.values))
      .onConflict((oc) => oc.columns(['tool_id', 'id']).doNothing()).returning(['tool_id', 'id']).execute()
    return new Set(result.map(identityOf))
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
    return (this.closing ??= Promise.resolve())
  }
}
