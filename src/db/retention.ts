import { setTimeout as sleep } from 'node:timers/promises'
import { sql, type Kysely } from 'kysely'
import type { Database } from './database.js'
import { unavailableOr } from './database-error.js'
import { positiveInteger } from '../core/positive-integer.js'

/**
 * Longest retention (36500 days, 100 years), as DLQ_RETENTION's: a prune deletes rows older than now minus the
 * retention, and past ~6,700 years that cutoff is before PostgreSQL's first timestamp, so every prune would fail.
 */
export const MAX_RETENTION_MS = 36_500 * 86_400_000

/** The tables retention prunes by age. */
export type RetentionTable = 'webhook_events' | 'webhook_audit_log' | 'webhook_deliveries'

// the distinct tool ids of webhook_events by a loose index scan: one index probe per tool on the
// (tool_id, id) primary key, instead of reading the table
const TOOL_IDS = sql<{ tool_id: string }>`
  WITH RECURSIVE t AS (
    (SELECT tool_id FROM webhook_events ORDER BY tool_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.tool_id FROM webhook_events e WHERE e.tool_id > t.tool_id ORDER BY e.tool_id LIMIT 1) FROM t WHERE t.tool_id IS NOT NULL
  )
  SELECT tool_id FROM t WHERE tool_id IS NOT NULL`

/**
 * Deletes at most `limit` stored events accepted before `before` (`received_at`), tool by tool through the
 * (tool_id, received_at) index, each tool in its own short statement: a prune takes only row locks, which
 * inserts of new events never wait for. Returns how many rows it deleted.
 *
 * @example
 * await pruneEvents(db, new Date(Date.now() - 30 * 86_400_000), 1000) // 1000 while more remain
 */
export async function pruneEvents(db: Kysely<Database>, before: Date, limit: number): Promise<number> {
  try {
    let deleted = 0
    for (const { tool_id: toolId } of (await TOOL_IDS.execute(db)).rows) {
      if (deleted >= limit) break
      const result = await sql`
        DELETE FROM webhook_events WHERE (tool_id, id) IN (
          SELECT tool_id, id FROM webhook_events WHERE tool_id = ${toolId} AND received_at < ${before} ORDER BY received_at LIMIT ${limit - deleted})`
        .execute(db)
      deleted += Number(result.numAffectedRows ?? 0)
    }
    return deleted
  } catch (err) {
    throw unavailableOr(err, 'pruning webhook_events')
  }
}

/**
 * Deletes at most `limit` audit rows written before `before`, oldest first. The log is append-only, so its
 * oldest rows come first in id order: one statement looks at the `limit` lowest ids and deletes the old ones
 * among them, never scanning the rest of the table. Returns how many rows it deleted.
 *
 * @example
 * await pruneAudit(db, new Date(Date.now() - 365 * 86_400_000), 1000)
 */
export async function pruneAudit(db: Kysely<Database>, before: Date, limit: number): Promise<number> {
  try {
    const result = await sql`
      DELETE FROM webhook_audit_log WHERE id IN (SELECT id FROM webhook_audit_log ORDER BY id LIMIT ${limit}) AND at < ${before}`
      .execute(db)
    return Number(result.numAffectedRows ?? 0)
  } catch (err) {
    throw unavailableOr(err, 'pruning webhook_audit_log')
  }
}

/**
 * Deletes at most `limit` delivery attempts that started before `before`, oldest first, through the started_at
 * index. Returns how many rows it deleted.
 *
 * @example
 * await pruneDeliveries(db, new Date(Date.now() - 7 * 86_400_000), 1000)
 */
export async function pruneDeliveries(db: Kysely<Database>, before: Date, limit: number): Promise<number> {
  try {
    const result = await sql`
      DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries WHERE started_at < ${before} ORDER BY started_at LIMIT ${limit})`
      .execute(db)
    return Number(result.numAffectedRows ?? 0)
  } catch (err) {
    throw unavailableOr(err, 'pruning webhook_deliveries')
  }
}

/** Options of `startRetention`; a table without a retention is kept forever. */
export interface RetentionOptions {
  readonly db: Kysely<Database>
  /** Stored events older than this (by `received_at`) are deleted, in ms, at most MAX_RETENTION_MS (EVENT_RETENTION). @defaultValue unset: kept forever */
  readonly eventsMs?: number
  /** Audit rows older than this are deleted, in ms (AUDIT_RETENTION). @defaultValue unset: kept forever */
  readonly auditMs?: number
  /** Delivery attempts older than this (by `started_at`) are deleted, in ms (DELIVERY_LOG_RETENTION). @defaultValue unset: kept forever */
  readonly deliveriesMs?: number
  /** Rows per DELETE statement (RETENTION_BATCH). @defaultValue 1000 */
  readonly batch?: number
  /** Time between prunes, in ms. @defaultValue 60000 */
  readonly intervalMs?: number
  /** Statements per table per prune at most, so one prune never runs for long. @defaultValue 100 */
  readonly maxBatches?: number
  /**
   * Share of the time a prune may keep a database connection busy: after a statement that took t ms it
   * pauses t × (1 / dutyCycle − 1) ms, so a slow (busy) database is pruned more gently. 1 never pauses.
   * @defaultValue 0.2
   */
  readonly dutyCycle?: number
  /** Told how many rows each statement deleted (for `webhook_retention_pruned_rows_total`). */
  readonly onPruned?: (table: RetentionTable, rows: number) => void
  /** Told about a failed prune (PostgreSQL down); the next one tries again. @defaultValue ignore */
  readonly onError?: (err: Error) => void
}

/** A running retention pruner. */
export interface Retention {
  /** Runs one prune now (or joins the one running); resolves with the rows deleted per table. */
  runOnce(): Promise<Record<RetentionTable, number>>
  /** Stops the timer and waits for the running prune to finish its current statement. Idempotent. */
  close(): Promise<void>
}

const positive = positiveInteger.bind(undefined, 'startRetention')

/**
 * Prunes `webhook_events`, `webhook_audit_log` and `webhook_deliveries` by age every `intervalMs`, in statements of `batch` rows with
 * a pause after each (see `dutyCycle`), at most `maxBatches` statements per table per prune. Several processes may run it:
 * they delete disjoint or already-deleted rows, never the same row twice. Nothing runs when neither
 * retention is set.
 *
 * @example
 * const retention = startRetention({ db, eventsMs: 30 * 86_400_000, onPruned: (t, n) => metrics.retentionPruned(t, n) })
 * await retention.close()
 */
export function startRetention(options: RetentionOptions): Retention {
  const batch = positive('batch', options.batch, 1000)
  const intervalMs = positive('intervalMs', options.intervalMs, 60_000)
  const maxBatches = positive('maxBatches', options.maxBatches, 100)
  const dutyCycle = options.dutyCycle ?? 0.2
  if (!(dutyCycle > 0 && dutyCycle <= 1)) throw new RangeError(`startRetention: "dutyCycle" must be above 0 and at most 1; got ${options.dutyCycle}`)
  for (const name of ['eventsMs', 'auditMs', 'deliveriesMs'] as const) {
    const ms = options[name]
    if (ms !== undefined && positive(name, ms, 0) > MAX_RETENTION_MS) {
      throw new RangeError(`startRetention: "${name}" must be at most ${MAX_RETENTION_MS} (36500 days); got ${ms}`)
    }
  }
  const onError = options.onError ?? (() => {})
  const jobs: [RetentionTable, number | undefined, (before: Date) => Promise<number>][] = [
    ['webhook_events', options.eventsMs, (before) => pruneEvents(options.db, before, batch)],
    ['webhook_audit_log', options.auditMs, (before) => pruneAudit(options.db, before, batch)],
    ['webhook_deliveries', options.deliveriesMs, (before) => pruneDeliveries(options.db, before, batch)],
  ]
  let closed = false
  let running: Promise<Record<RetentionTable, number>> | undefined

  const prune = async () => {
    const total: Record<RetentionTable, number> = { webhook_events: 0, webhook_audit_log: 0, webhook_deliveries: 0 }
    for (const [table, ageMs, once] of jobs) {
      if (ageMs === undefined) continue
      const before = new Date(Date.now() - ageMs)
      for (let i = 0; i < maxBatches && !closed; i++) {
        const started = performance.now()
        const rows = await once(before)
        total[table] += rows
        if (rows > 0) options.onPruned?.(table, rows)
        if (rows < batch) break
        await sleep((performance.now() - started) * (1 / dutyCycle - 1))
      }
    }
    return total
  }
  const runOnce = () => {
    running ??= prune().finally(() => { running = undefined })
    return running
  }
  const active = jobs.some(([, ageMs]) => ageMs !== undefined)
  const timer = active ? setInterval(() => { if (!running && !closed) runOnce().catch((err: Error) => onError(err)) }, intervalMs) : undefined
  timer?.unref()
  let closing: Promise<void> | undefined
  return {
    runOnce,
    close() {
      closing ??= (async () => {
        closed = true
        clearInterval(timer)
        await running?.catch(() => {})
      })()
      return closing
    },
  }
}
