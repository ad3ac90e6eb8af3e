import { sql, type Insertable, type Kysely, type Selectable, type SelectQueryBuilder, type Transaction } from 'kysely'
import { PipelineError } from '../core/errors.js'
import { withoutCredentialHeaders } from '../core/scrub-headers.js'
import { validateStreamEvent, type StreamEvent } from '../core/event.js'
import type { Database, DlqEventFormat, DlqStatus, WebhookDlqTable } from './database.js'
import { appendAudit } from './audit-log.js'
import { unavailableOr } from './database-error.js'
import { identityIn } from './event-identity.js'
import { applyDlqFilter, decodeDlqCursor, DLQ_STATUSES, encodeDlqCursor, type DlqFilter, type DlqQuery } from './dlq-filter.js'


/**
 * How long a DLQ row stays `retrying` before it may be re-queued by hand again (`retryOne`, the admin API's and
 * CLI's retry of one entry): 1 hour. A re-queued event normally resolves its row within seconds; one whose stream
 * entry was trimmed or lost never would. Idempotent storage keeps a second copy from being stored twice.
 */
export const DLQ_RETRYING_STALE_MS = 60 * 60 * 1000

/** A DLQ row as the admin API and the CLI show it (`event` and `history` only in `get`). */
export interface DlqEntry {
  readonly id: number
  readonly event_id: string
  readonly tool_id: string
  readonly event_type: string | null
  readonly status: DlqStatus
  readonly error: string
  readonly error_class: string
  readonly error_code: string | null
  readonly retry_count: number
  readonly undecodable: boolean
  /** `jsonb`, or `raw` when jsonb could not hold the event and it is kept byte for byte (see `event_raw`). */
  readonly event_format: DlqEventFormat
  readonly failed_at: Date
  readonly next_retry_at: Date | null
  readonly resolved_at: Date | null
  readonly updated_at: Date
}

/** One `webhook_audit_log` row. */
export interface AuditEntry { readonly at: Date; readonly action: string; readonly actor: string; readonly details: unknown }

/**
 * A DLQ row with the stored event and its audit history. `event` is the event as jsonb; when `event_format` is
 * `raw` it is null and `event_raw` holds the stream entry's text exactly as it was queued.
 */
export type DlqDetail = DlqEntry & { readonly event: unknown; readonly event_raw: string | null; readonly history: readonly AuditEntry[] }

/** One re-queued row: its new stream entry and retry count. */
export interface RequeuedEntry { readonly id: number; readonly event_id: string; readonly retry_count: number; readonly stream_id: string }

/** What `retryMatching` re-queued: how many rows, and the first `keepEntries` of them. */
export interface RequeuedMatching {
  readonly count: number
  readonly entries: readonly RequeuedEntry[]
}

/** Where re-queued events go: the main stream's StreamClient fits (db does not import sources). */
export interface EventAppender {
  readonly stream: string
  addMany(events: readonly StreamEvent[], options?: { maxLen?: number }): Promise<string[]>
  /** Appends `rawEvent` unchanged as field `event` with `event`'s retry count beside it; `event` routes it. */
  addRaw(event: StreamEvent, rawEvent: Buffer, options?: { maxLen?: number }): Promise<string>
}

/**
 * A status change of DLQ rows, as the store reports it: `requeued` (put back on the main stream, now `retrying`),
 * `resolved` (a re-queued event went through), `failed` (its rounds are used up, or re-queueing cannot help) or
 * `discarded`. The label values of `webhook_dlq_retries_total`.
 */
export type DlqStatusChange = 'requeued' | 'resolved' | 'failed' | 'discarded'
/** Told, once the change is committed, that `count` rows (at least 1) took `change`. */
export type DlqStatusListener = (change: DlqStatusChange, count: number) => void

/** Options of DlqStore. */
export interface DlqStoreOptions {
  readonly db: Kysely<Database>
  /** The main stream re-queued events go back to. */
  readonly stream: EventAppender
  /** Approximate cap passed to XADD (`MAXLEN ~`). @defaultValue unset (no trimming) */
  readonly maxLen?: number
  /** Told about every status change the store makes (re-queues, rows marked failed, discards), for metrics. */
  readonly onStatusChange?: DlqStatusListener
}

const ENTRY_COLUMNS = ['id', 'event_id', 'tool_id', 'event_format', 'status', 'error', 'error_class', 'error_code', 'retry_count',
  'failed_at', 'next_retry_at', 'resolved_at', 'updated_at'] as const
const CHUNK = 500

interface RequeueOptions { actor: string; limit: number; skipBad: boolean; failBad?: boolean; maxRounds?: number }

function bad(code: string, message: string): PipelineError {
  return new PipelineError('permanent', code, message)
}

// read from the jsonb server-side, so a list does not ship every payload
const DERIVED = [
  sql<string | null>`case when event ? 'undecodable' then null else event->>'event_type' end`.as('event_type'),
  sql<boolean>`event ? 'undecodable'`.as('undecodable'),
]

function toEntry(row: Record<string, unknown>): DlqEntry {
  return {
    id: Number(row.id), event_id: row.event_id as string, tool_id: row.tool_id as string,
    event_type: (row.event_type as string | null) ?? null,
    status: row.status as DlqStatus, error: row.error as string, error_class: row.error_class as string,
    error_code: (row.error_code as string | null) ?? null, retry_count: row.retry_count as number, undecodable: row.undecodable === true,
    event_format: row.event_format as DlqEventFormat,
    failed_at: row.failed_at as Date, next_retry_at: (row.next_retry_at as Date | null) ?? null,
    resolved_at: (row.resolved_at as Date | null) ?? null, updated_at: row.updated_at as Date,
  }
}

// the event with metadata.headers that carry credentials left out (the same object when it has none)
function withoutCredentials(event: unknown): unknown {
  const headers = (event as { metadata?: { headers?: unknown } } | null)?.metadata?.headers
  if (typeof headers !== 'object' || headers === null) return event
  const kept = withoutCredentialHeaders(headers as Record<string, unknown>)
  if (kept === headers) return event
  const { metadata } = event as { metadata: Record<string, unknown> }
  return { ...(event as object), metadata: { ...metadata, headers: kept } }
}

// a raw row's text as stored, unless it holds such headers: then its JSON without them (JSON.stringify writes a
// NUL or a lone surrogate as an escape, so the view still shows them)
function rawWithoutCredentials(raw: string): string {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return raw
  }
  const kept = withoutCredentials(value)
  return kept === value ? raw : JSON.stringify(kept)
}

function decodable(event: unknown, raw?: Uint8Array | null): StreamEvent | undefined {
  try {
    // a raw row is the entry's own JSON text; JSON.parse takes any depth and lone surrogates, jsonb did not
    const value: unknown = raw ? JSON.parse(Buffer.from(raw).toString('utf8')) : event
    if (typeof value !== 'object' || value === null || (value as { undecodable?: unknown }).undecodable === true) return undefined
    return validateStreamEvent(value)
  } catch {
    return undefined
  }
}

/**
 * Reads and changes `webhook_dlq`: list with filters and cursor pages, show one entry with its audit
 * history, re-queue (XADD back on the main stream with `retry_count + 1`, status `retrying`, audit
 * `dlq_requeued`), discard, purge and count. Every re-queue locks its rows with `FOR UPDATE SKIP LOCKED`
 * and XADDs inside the transaction, so two callers never re-queue one row twice and a failed XADD leaves
 * the rows as they were.
 *
 * @example
 * const dlq = new DlqStore({ db, stream: new StreamClient({ redis, stream: keys.stream }) })
 * const { entries, nextCursor } = await dlq.list({ status: ['pending'] }, { limit: 20 })
 * await dlq.retryOne(entries[0].id, 'cli')
 */
export class DlqStore {
  private readonly db: Kysely<Database>
  private readonly stream: EventAppender
  private readonly maxLen: number | undefined
  private readonly onStatusChange: DlqStatusListener | undefined

  constructor(options: DlqStoreOptions) {
    if (!options?.db) throw new TypeError('DlqStore: "db" must be a Kysely instance (see createDb)')
    if (!options.stream) throw new TypeError('DlqStore: "stream" must be a StreamClient of the main stream')
    if (options.maxLen !== undefined && (!Number.isInteger(options.maxLen) || options.maxLen < 1)) {
      throw new RangeError(`DlqStore: "maxLen" must be a positive integer; got ${options.maxLen}`)
    }
    this.db = options.db
    this.stream = options.stream
    this.maxLen = options.maxLen
    this.onStatusChange = options.onStatusChange
  }

  private report(change: DlqStatusChange, count: number): void {
    if (count > 0) this.onStatusChange?.(change, count)
  }

  /** One page of rows, newest first; `nextCursor` is set when more rows match. `limit` is 1–1000 (default 50). */
  async list(filter: DlqFilter = {}, page: { limit?: number; cursor?: string } = {}): Promise<{ entries: DlqEntry[]; nextCursor: string | null }> {
    const limit = page.limit ?? 50
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw bad('DLQ_FILTER_INVALID', `DLQ "limit" must be an integer from 1 to 1000; got ${page.limit}`)
    let q = applyDlqFilter(this.db.selectFrom('webhook_dlq').select([...ENTRY_COLUMNS, ...DERIVED]), filter)
    if (page.cursor) q = q.where('id', '<', decodeDlqCursor(page.cursor))
    try {
      const rows = await q.orderBy('id', 'desc').limit(limit + 1).execute()
      const entries = rows.slice(0, limit).map((r) => toEntry(r))
      const last = entries[entries.length - 1]
      return { entries, nextCursor: rows.length > limit && last ? encodeDlqCursor(last.id) : null }
    } catch (err) {
      throw unavailableOr(err, 'listing DLQ entries')
    }
  }

  /**
   * One row with the stored event and its audit history (oldest first), or undefined. Inbound headers that carry
   * credentials (DEFAULT_SCRUB_HEADERS) are left out of the event shown, whatever the ingest list was when it was
   * stored; a re-queue sends the event as stored.
   */
  async get(id: number): Promise<DlqDetail | undefined> {
    try {
      const row = await this.db.selectFrom('webhook_dlq').select([...ENTRY_COLUMNS, ...DERIVED, 'event', 'event_raw']).where('id', '=', id).executeTakeFirst()
      if (!row) return undefined
      const history = await this.db.selectFrom('webhook_audit_log').select(['at', 'action', 'actor', 'details'])
        .where('tool_id', '=', row.tool_id).where('event_id', '=', row.event_id).where('entity', '=', 'dlq').orderBy('id').execute()
      const raw = row.event_raw ? Buffer.from(row.event_raw).toString('utf8') : null
      return { ...toEntry(row), event: withoutCredentials(row.event), event_raw: raw === null ? null : rawWithoutCredentials(raw), history }
    } catch (err) {
      throw unavailableOr(err, `reading DLQ entry ${id}`)
    }
  }

  /**
   * Re-queues row `id` now (from `pending` or `failed`, or from `retrying` after DLQ_RETRYING_STALE_MS: its
   * re-queued stream entry may have been trimmed or lost, and nothing else would ever move it). Throws a permanent
   * PipelineError: `DLQ_NOT_FOUND`, `DLQ_UNDECODABLE` (discard it instead), `DLQ_NOT_RETRYABLE` (retrying for less
   * than that, resolved or discarded),
   * `DLQ_BUSY` (another caller holds it); infrastructure `REDIS_UNAVAILABLE` when the XADD fails.
   */
  async retryOne(id: number, actor: string): Promise<RequeuedEntry> {
    const [done] = await this.requeueWhere((q) => q.where('id', '=', id).where((eb) => eb.or([
      eb('status', 'in', ['pending', 'failed']),
      eb.and([eb('status', '=', 'retrying'), eb('updated_at', '<', sql<Date>`now() - make_interval(secs => ${DLQ_RETRYING_STALE_MS / 1000})`)]),
    ])), { actor, limit: 1, skipBad: false })
    if (done) return done
    const row = await this.db.selectFrom('webhook_dlq').select(['status', 'event', 'event_raw', 'updated_at']).where('id', '=', id).executeTakeFirst()
      .catch((err: unknown) => { throw unavailableOr(err, `reading DLQ entry ${id}`) })
    if (!row) throw bad('DLQ_NOT_FOUND', `DLQ entry ${id} does not exist; list entries with GET /admin/dlq or \`hookstream dlq list\``)
    if (!decodable(row.event, row.event_raw)) {
      throw bad('DLQ_UNDECODABLE', `DLQ entry ${id} holds a stream entry that could not be decoded as an event, so it cannot be re-queued; inspect it and discard it`)
    }
    if (row.status === 'retrying' && Date.now() - new Date(row.updated_at).getTime() < DLQ_RETRYING_STALE_MS) {
      throw bad('DLQ_NOT_RETRYABLE', `DLQ entry ${id} is retrying since ${new Date(row.updated_at).toISOString()}; it is resolved when the ` +
        're-queued event goes through. If its stream entry was lost (trimmed, or Redis restarted without persistence), it can be ' +
        're-queued again once it has been retrying for an hour')
    }
    if (row.status !== 'pending' && row.status !== 'failed' && row.status !== 'retrying') {
      throw bad('DLQ_NOT_RETRYABLE', `DLQ entry ${id} is ${row.status}; only pending or failed entries (or one retrying for over an hour) can be re-queued`)
    }
    throw bad('DLQ_BUSY', `DLQ entry ${id} is being re-queued by another caller right now; look at it again in a moment`)
  }

  /**
   * Re-queues every decodable `pending`/`failed` row that matches `filter` (narrowed to those statuses) and was
   * there when it started, in chunks (rows dead-lettered while it runs wait for the next); `onProgress` gets the
   * running count after each chunk. Returns the count and the first `keepEntries` re-queued rows (a retry of a
   * million rows need not hold a million of them in memory).
   */
  async retryMatching(filter: DlqFilter, actor: string, onProgress?: (requeued: number) => void, keepEntries = Infinity): Promise<RequeuedMatching> {
    const statuses = (filter.status ?? ['pending', 'failed']).filter((s) => s === 'pending' || s === 'failed')
    if (statuses.length === 0) return { count: 0, entries: [] }
    // the rows there when it starts: under a flood of new dead letters the chunks would otherwise never end
    const last = await this.db.selectFrom('webhook_dlq').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst()
      .catch((err: unknown) => { throw unavailableOr(err, 're-queueing DLQ entries') })
    const lastId = Number(last?.id ?? 0)
    const entries: RequeuedEntry[] = []
    let count = 0
    let afterId = 0
    for (;;) {
      const chunk = await this.requeueRows((q) => applyDlqFilter(q, { ...filter, status: statuses }).where('id', '>', afterId).where('id', '<=', lastId),
        { actor, limit: CHUNK, skipBad: true })
      count += chunk.requeued.length
      entries.push(...chunk.requeued.slice(0, Math.max(0, keepEntries - entries.length)))
      if (chunk.requeued.length > 0) onProgress?.(count)
      // a chunk may re-queue nothing (all undecodable, all locked by another retry) while rows remain behind it
      if (chunk.lastId === undefined) return { count, entries }
      afterId = chunk.lastId
    }
  }

  /**
   * Re-queues up to `limit` rows that are due (`pending`, `next_retry_at <= now()`), oldest due first; rows
   * whose event cannot be re-queued, or whose `retry_count` reached `maxRounds`, are marked `failed` (audit
   * `dlq_failed`) instead. For the DLQ retry worker.
   */
  async retryDue(limit: number, actor: string, maxRounds = Infinity): Promise<RequeuedEntry[]> {
    return this.requeueWhere((q) => q.where('status', '=', 'pending').where('next_retry_at', '<=', sql<Date>`now()`),
      { actor, limit, skipBad: false, failBad: true, maxRounds })
  }

  private async requeueWhere(narrow: (q: DlqQuery) => DlqQuery, opts: RequeueOptions): Promise<RequeuedEntry[]> {
    return (await this.requeueRows(narrow, opts)).requeued
  }

  // re-queues one chunk; `lastId` is the highest row id the chunk read (undefined when it read none)
  private async requeueRows(narrow: (q: DlqQuery) => DlqQuery, opts: RequeueOptions): Promise<{ requeued: RequeuedEntry[]; lastId: number | undefined }> {
    let chunk: { requeued: RequeuedEntry[]; lastId: number | undefined; failed: number }
    try {
      chunk = await this.db.transaction().execute(async (trx) => {
        const base = trx.selectFrom('webhook_dlq').select(['id', 'tool_id', 'event_id', 'event', 'event_raw', 'retry_count']) as unknown as DlqQuery
        const rows = await (narrow(base) as unknown as SelectQueryBuilder<Database, 'webhook_dlq',
          { id: number; tool_id: string; event_id: string; event: unknown; event_raw: Uint8Array | null; retry_count: number }>)
          .orderBy('id').limit(opts.limit).forUpdate().skipLocked().execute()
        const good: { id: number; tool_id: string; event_id: string; event: StreamEvent; raw: Buffer | null }[] = []
        const undecodable: number[] = []
        const usedUp: number[] = []
        for (const r of rows) {
          const event = decodable(r.event, r.event_raw)
          if (!event) { if (opts.failBad) undecodable.push(r.id) } else if (r.retry_count >= (opts.maxRounds ?? Infinity)) usedUp.push(r.id)
          else {
            good.push({ id: r.id, tool_id: r.tool_id, event_id: r.event_id, event: { ...event, retry_count: r.retry_count + 1 },
              raw: r.event_raw ? Buffer.from(r.event_raw) : null })
          }
        }
        let failed = 0
        if (undecodable.length > 0) failed += await this.failRows(trx, undecodable, opts.actor, 'the stored event cannot be re-queued (undecodable or invalid)')
        if (usedUp.length > 0) failed += await this.failRows(trx, usedUp, opts.actor, `the DLQ policy's ${opts.maxRounds} re-queue rounds are used up`)
        const lastId = rows.length > 0 ? rows[rows.length - 1]!.id : undefined
        if (good.length === 0) return { requeued: [], lastId, failed }
        const ids = good.map((g) => g.id)
        await trx.updateTable('webhook_dlq')
          .set((eb) => ({ status: 'retrying', retry_count: eb('retry_count', '+', 1), next_retry_at: null, updated_at: sql`now()` }))
          .where('id', 'in', ids).execute()
        let streamIds: string[]
        try {
          // XADD last, just before COMMIT: if it fails the transaction rolls back and the rows stay as they were
          const addOptions = this.maxLen !== undefined ? { maxLen: this.maxLen } : {}
          const jsonb = good.filter((g) => g.raw === null)
          const added = new Map<(typeof good)[number], string>()
          ;(await this.stream.addMany(jsonb.map((g) => g.event), addOptions)).forEach((streamId, i) => added.set(jsonb[i]!, streamId))
          // a raw row goes back byte for byte (jsonb could not hold it, and JSON.stringify may not either)
          for (const g of good) if (g.raw !== null) added.set(g, await this.stream.addRaw(g.event, g.raw, addOptions))
          streamIds = good.map((g) => added.get(g) as string)
        } catch (err) {
          throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
            `re-queueing ${good.length} DLQ entries to stream ${this.stream.stream} failed: ${(err as Error).message}; the entries stay as they were`, { cause: err })
        }
        const done = good.map((g, i): RequeuedEntry => ({ id: g.id, event_id: g.event_id, retry_count: g.event.retry_count, stream_id: streamIds[i] as string }))
        await appendAudit(trx, done.map((d, i) => ({
          entity: 'dlq', action: 'dlq_requeued', actor: opts.actor, eventId: d.event_id, toolId: good[i]!.tool_id,
          details: { dlq_id: d.id, retry_count: d.retry_count, stream_id: d.stream_id },
        })))
        return { requeued: done, lastId, failed }
      })
    } catch (err) {
      throw unavailableOr(err, 're-queueing DLQ entries')
    }
    // committed: only now did the rows change
    this.report('failed', chunk.failed)
    this.report('requeued', chunk.requeued.length)
    return { requeued: chunk.requeued, lastId: chunk.lastId }
  }

  // the rows it marked failed
  private async failRows(trx: Transaction<Database>, ids: number[], actor: string, reason: string): Promise<number> {
    const rows = await trx.updateTable('webhook_dlq').set({ status: 'failed', next_retry_at: null, updated_at: sql`now()` })
      .where('id', 'in', ids).returning(['id', 'tool_id', 'event_id']).execute()
    await appendAudit(trx, rows.map((r) => ({ entity: 'dlq', action: 'dlq_failed', actor, eventId: r.event_id, toolId: r.tool_id, details: { dlq_id: r.id, reason } })))
    return rows.length
  }

  /** Marks row `id` `discarded` (from pending, retrying or failed) with audit `dlq_discarded`. Throws `DLQ_NOT_FOUND` or `DLQ_NOT_DISCARDABLE`. */
  async discard(id: number, actor: string): Promise<DlqEntry> {
    let entry: DlqEntry
    try {
      entry = await this.db.transaction().execute(async (trx) => {
        const row = await trx.selectFrom('webhook_dlq').select(['id', 'status', 'tool_id', 'event_id']).where('id', '=', id).forUpdate().executeTakeFirst()
        if (!row) throw bad('DLQ_NOT_FOUND', `DLQ entry ${id} does not exist; list entries with GET /admin/dlq or \`hookstream dlq list\``)
        if (row.status === 'resolved' || row.status === 'discarded') {
          throw bad('DLQ_NOT_DISCARDABLE', `DLQ entry ${id} is already ${row.status}; only pending, retrying or failed entries can be discarded`)
        }
        const updated = await trx.updateTable('webhook_dlq').set({ status: 'discarded', next_retry_at: null, updated_at: sql`now()` })
          .where('id', '=', id).returning([...ENTRY_COLUMNS, ...DERIVED]).executeTakeFirstOrThrow()
        await appendAudit(trx, [{ entity: 'dlq', action: 'dlq_discarded', actor, eventId: row.event_id, toolId: row.tool_id,
          details: { dlq_id: id, previous_status: row.status } }])
        return toEntry(updated)
      })
    } catch (err) {
      throw unavailableOr(err, `discarding DLQ entry ${id}`)
    }
    this.report('discarded', 1)
    return entry
  }

  /** Deletes rows in `statuses` (resolved and/or discarded only) last changed more than `olderThanMs` ago; returns how many. */
  async purge(options: { statuses?: readonly ('resolved' | 'discarded')[]; olderThanMs: number }): Promise<number> {
    const statuses = options.statuses ?? ['resolved', 'discarded']
    if (statuses.length === 0 || statuses.some((s) => s !== 'resolved' && s !== 'discarded')) {
      throw bad('DLQ_FILTER_INVALID', `DLQ purge "status" must be resolved and/or discarded; got ${JSON.stringify(statuses)}`)
    }
    if (!Number.isFinite(options.olderThanMs) || options.olderThanMs < 0) {
      throw bad('DLQ_FILTER_INVALID', `DLQ purge "olderThanMs" must be a duration of at least 0; got ${options.olderThanMs}`)
    }
    try {
      const res = await this.db.deleteFrom('webhook_dlq').where('status', 'in', statuses)
        .where('updated_at', '<', new Date(Date.now() - options.olderThanMs)).executeTakeFirst()
      return Number(res.numDeletedRows)
    } catch (err) {
      throw unavailableOr(err, 'purging DLQ entries')
    }
  }

  /** Rows per status (every status present, 0 when none). */
  async countByStatus(): Promise<Record<DlqStatus, number>> {
    try {
      const rows = await this.db.selectFrom('webhook_dlq').select(['status', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('status').execute()
      const out = Object.fromEntries(DLQ_STATUSES.map((s) => [s, 0])) as Record<DlqStatus, number>
      for (const r of rows) out[r.status] = Number(r.n)
      return out
    } catch (err) {
      throw unavailableOr(err, 'counting DLQ entries')
    }
  }
}

/** One `webhook_dlq` row as `toDLQ` writes it: the event as jsonb (`event`) or byte for byte (`event_raw`). */
export type DeadLetterRow = Insertable<WebhookDlqTable> &
  Pick<Selectable<WebhookDlqTable>, 'event_id' | 'tool_id' | 'error_code' | 'error_class' | 'retry_count' | 'status' | 'event_format'>

/**
 * Writes dead letters and their `dead_lettered` audit rows in one transaction. An event that already has an
 * open row (pending, retrying, failed) updates it (error, status, schedule; the retry count only upwards) instead of adding one.
 * Give each event once per call (ON CONFLICT touches a row once per statement). Once committed, `onStatusChange`
 * is told how many rows became `failed` (written `failed` and not `failed` before: rounds used up, poison,
 * undecodable). Errors are PostgreSQL's own, for the caller to classify (`toDLQ` falls back row by row, then to
 * `event_raw`).
 *
 * @example
 * await writeDeadLetters(db, [{ event_id: 'd1', tool_id: 'gh', event: '{…}', event_raw: null, event_format: 'jsonb', … }], 'worker')
 */
export async function writeDeadLetters(db: Kysely<Database>, rows: readonly DeadLetterRow[], actor: string, onStatusChange?: DlqStatusListener): Promise<void> {
  const failed = await db.transaction().execute(async (trx) => {
    // the rows that become failed now: written failed, and not failed already (one more failure of a failed event)
    const failing = rows.filter((r) => r.status === 'failed')
    let wasFailed = new Set<string>()
    if (failing.length > 0) {
      const open = await trx.selectFrom('webhook_dlq').select(['tool_id', 'event_id'])
        .where(identityIn(failing.map((r) => ({ tool_id: r.tool_id, id: r.event_id })), 'event_id')).where('status', '=', 'failed').execute()
      wasFailed = new Set(open.map((r) => `${r.tool_id}\u0000${r.event_id}`))
    }
    await trx.insertInto('webhook_dlq').values([...rows])
      .onConflict((oc) => oc.columns(['tool_id', 'event_id']).where(sql.ref('status'), 'in', ['pending', 'retrying', 'failed']).doUpdateSet((eb) => ({
        error: eb.ref('excluded.error'), error_class: eb.ref('excluded.error_class'), error_code: eb.ref('excluded.error_code'),
        // an older copy of the event (another destination's delivery, a redelivery) may fail after a re-queue: keep the rounds
        retry_count: sql<number>`greatest(webhook_dlq.retry_count, excluded.retry_count)`,
        status: eb.ref('excluded.status'), next_retry_at: eb.ref('excluded.next_retry_at'),
        failed_at: sql`now()`, updated_at: sql`now()`,
      }))).execute()
    await appendAudit(trx, rows.map((r) => ({
      entity: 'dlq', action: 'dead_lettered', actor, eventId: r.event_id, toolId: r.tool_id,
      details: { error_code: r.error_code, error_class: r.error_class, retry_count: r.retry_count, status: r.status, event_format: r.event_format },
    })))
    return failing.filter((r) => !wasFailed.has(`${r.tool_id}\u0000${r.event_id}`)).length
  })
  if (failed > 0) onStatusChange?.('failed', failed)
}

/**
 * Closes the DLQ rows of re-queued events that went through: status `retrying` → `resolved` with `resolved_at`
 * and a `dlq_resolved` audit row each, in one transaction. Returns how many rows it closed. Errors are
 * PostgreSQL's own, for the caller to classify.
 *
 * @example
 * await resolveRequeued(db, [{ tool_id: 'gh', id: 'd1' }], 'worker') // 1
 */
export async function resolveRequeued(db: Kysely<Database>, events: readonly Pick<StreamEvent, 'tool_id' | 'id'>[], actor: string): Promise<number> {
  if (events.length === 0) return 0
  return db.transaction().execute(async (trx) => {
    // a re-queue XADDs before it commits, so a fast worker gets here while the row is still `pending` in this
    // statement's snapshot: lock the open rows first (waiting for that commit), then the UPDATE sees `retrying`
    await trx.selectFrom('webhook_dlq').select('id').where(identityIn(events, 'event_id')).where('status', 'in', ['pending', 'retrying', 'failed'])
      .orderBy('id').forUpdate().execute()
    const rows = await trx.updateTable('webhook_dlq')
      .set({ status: 'resolved', resolved_at: sql`now()`, updated_at: sql`now()`, next_retry_at: null })
      .where(identityIn(events, 'event_id')).where('status', '=', 'retrying')
      .returning(['id', 'tool_id', 'event_id', 'retry_count']).execute()
    await appendAudit(trx, rows.map((r) => ({
      entity: 'dlq', action: 'dlq_resolved', actor, eventId: r.event_id, toolId: r.tool_id, details: { dlq_id: r.id, retry_count: r.retry_count },
    })))
    return rows.length
  })
}
