import { sql, type Kysely } from 'kysely'
import { PipelineError } from '../core/errors.js'
import { isDatabaseUnavailable, type Database } from '../db/database.js'
import type { Sink } from './sink.js'

/** One `webhook_events` row as the sink writes it (every column but `processed_at`, which the database sets). */
export interface EventRow {
  /** The event id; the primary key, so a redelivered event is not stored twice. */
  readonly id: string
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
  /** The transform's result, when the tool has one; `undefined` or `null` store SQL NULL. */
  readonly transformed?: unknown
  /** The Redis stream entry id the event came from. */
  readonly stream_id: string
  /** When ingest accepted the event (the StreamEvent's `timestamp`). */
  readonly received_at: Date | string
  readonly forwarded_at?: Date | string | null
}

/** What `writeReturning` found: the failures, and which of the other rows were new. */
export interface PostgresWriteResult {
  /** Rows that could not be stored, by index; always permanent (`STORE_REJECTED`). */
  readonly failures: ReadonlyMap<number, PipelineError>
  /** Indexes of rows this call inserted. Every other index without a failure was stored already (a duplicate). */
  readonly inserted: ReadonlySet<number>
}

/**
 * What PostgresSink writes to.
 *
 * @example
 * new PostgresSink({ db: (await createDb({ url })).db })
 */
export interface PostgresSinkOptions {
  /** A Kysely instance from createDb, migrated (see migrateToLatest); the sink does not close it. */
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
    payload: row.eventJson !== undefined ? sql<string>`(${row.eventJson}::jsonb -> 'payload')` : JSON.stringify(row.payload ?? null),
    transformed: row.transformed === undefined || row.transformed === null ? null : JSON.stringify(row.transformed),
    stream_id: row.stream_id, received_at: row.received_at, forwarded_at: row.forwarded_at ?? null,
  }
}

interface Pending { readonly index: number; readonly row: EventRow; readonly values: ReturnType<typeof toValues> }

function rejected(row: EventRow, reason: string, cause: unknown): PipelineError {
  return new PipelineError('permanent', 'STORE_REJECTED',
    `PostgreSQL rejected event "${row.id}" (tool "${row.tool_id}") for webhook_events: ${reason}; ` +
    'the event is dead-lettered — fix its payload or the producer and re-queue it', { cause })
}

function sqlState(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : ''
}

// data exceptions, integrity violations and program limits (e.g. a too-large value) belong to one row
function isRowError(err: unknown): boolean {
  return /^(22|23|54)/.test(sqlState(err))
}

function infrastructure(err: unknown, what: string): PipelineError {
  if (err instanceof PipelineError) return err
  const reason = `${(err as Error)?.message ?? String(err)}${sqlState(err) ? ` (SQLSTATE ${sqlState(err)})` : ''}`
  return isDatabaseUnavailable(err)
    ? new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE',
      `PostgreSQL is unreachable while ${what}: ${reason}; events stay unacked and are retried when it is back — check DATABASE_URL and the server`, { cause: err })
    : new PipelineError('infrastructure', 'STORE_FAILED',
      `PostgreSQL failed while ${what}: ${reason}; events stay unacked — check that migrations ran (hookstream migrate) and the user's privileges`, { cause: err })
}

/**
 * Stores events in `webhook_events` with one multi-row `INSERT … ON CONFLICT (id) DO NOTHING` per chunk
 * (chunks stay under PostgreSQL's 65,535 bind parameters). A row PostgreSQL rejects (e.g. a `\u0000` in a
 * jsonb payload) fails alone with `STORE_REJECTED`; an unreachable database rejects the whole call with
 * `DATABASE_UNAVAILABLE` so the pipeline holds the events instead of dead-lettering them.
 *
 * @example
 * const sink = new PostgresSink({ db })
 * const { failures, inserted } = await sink.writeReturning(rows)
 * const duplicates = rows.length - failures.size - inserted.size
 */
export class PostgresSink implements Sink<EventRow> {
  private readonly db: Kysely<Database>
  private closed = false
  private closing: Promise<void> | undefined

  constructor(options: PostgresSinkOptions) {
    if (!options?.db) throw new TypeError('PostgresSink: "db" must be a Kysely instance (see createDb)')
    this.db = options.db
  }

  /** Stores the rows; resolves with the failures by index (see `writeReturning` for which rows were new). */
  async write(items: readonly EventRow[]): Promise<ReadonlyMap<number, PipelineError>> {
    return (await this.writeReturning(items)).failures
  }

  /**
   * Stores the rows and tells which were inserted now; rows neither inserted nor failed were stored before.
   * A batch holding one id twice inserts the first and counts the second as a duplicate.
   */
  async writeReturning(items: readonly EventRow[]): Promise<PostgresWriteResult> {
    if (this.closed) throw new Error('PostgresSink: write after close(); create a new sink')
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
      if (!isRowError(err)) throw infrastructure(err, `storing ${chunk.length} events in webhook_events`)
      // one bad row failed the whole statement: find it by storing the chunk row by row
      for (const one of chunk) {
        try {
          if ((await this.insert([one])).size > 0) inserted.add(one.index)
        } catch (rowErr) {
          if (!isRowError(rowErr)) throw infrastructure(rowErr, `storing event "${one.row.id}" in webhook_events`)
          failures.set(one.index, rejected(one.row, `${(rowErr as Error).message} (SQLSTATE ${sqlState(rowErr)})`, rowErr))
        }
      }
      return
    }
    for (const { index, row } of chunk) {
      // the first index of an id gets the insert; a repeat in the same batch is a duplicate
      if (ids.delete(row.id)) inserted.add(index)
    }
  }

  private async insert(chunk: readonly Pending[]): Promise<Set<string>> {
    const result = await this.db.insertInto('webhook_events').values(chunk.map((p) => p.values))
      .onConflict((oc) => oc.column('id').doNothing()).returning('id').execute()
    return new Set(result.map((r) => r.id))
  }

  /**
   * Sets `forwarded_at` on the given events in one UPDATE; resolves with the number of rows updated.
   * Rejects with an infrastructure PipelineError when the database is unreachable.
   *
   * @example
   * await sink.markForwarded(['evt-1', 'evt-2'], new Date())
   */
  async markForwarded(ids: readonly string[], at: Date = new Date()): Promise<number> {
    if (this.closed) throw new Error('PostgresSink: markForwarded after close(); create a new sink')
    if (ids.length === 0) return 0
    try {
      const result = await this.db.updateTable('webhook_events').set({ forwarded_at: at })
        .where((eb) => eb('id', '=', eb.fn.any(eb.val([...ids])))).executeTakeFirst()
      return Number(result.numUpdatedRows)
    } catch (err) {
      throw infrastructure(err, `marking ${ids.length} events forwarded`)
    }
  }

  /** Stops accepting writes. The Kysely instance belongs to the caller and stays open. */
  close(): Promise<void> {
    this.closed = true
    return (this.closing ??= Promise.resolve())
  }
}
