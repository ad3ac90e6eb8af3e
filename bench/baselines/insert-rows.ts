import type { StreamEvent } from '../../src/core/event.js'
import { decodeEntry, entryPayloadJson } from '../../src/core/stream-entry.js'

/** One row for `insertEvents`: the event, its entry id and, for a v2 entry, the payload's raw JSON text. */
export interface BaselineRow {
  readonly event: StreamEvent
  readonly streamId: string
  /** Sent to PostgreSQL as it is; without it the payload is serialized. */
  readonly payloadJson?: string | undefined
}

/**
 * A stream entry as the baselines read it: the header decoded, the payload's text kept raw (a v2 entry's
 * payload is never parsed), like the pipeline's store path.
 *
 * @example
 * const row = entryRow('1-0', ['id', 'd-1', …, 'payload', '{}'])
 */
export function entryRow(streamId: string, list: readonly string[] | null): BaselineRow {
  const fields: Record<string, string> = {}
  for (let i = 0; list && i + 1 < list.length; i += 2) fields[list[i] as string] = list[i + 1] as string
  return { event: decodeEntry(fields), streamId, payloadJson: entryPayloadJson(fields) }
}

/** The part of pg's Pool / Client the baselines use. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rowCount: number | null }>
}

const COLUMNS = '(id, tool_id, tenant_id, event_type, repository, payload, stream_id, received_at)'
const PER_ROW = 8
const statements = new Map<number, string>()

function insertSql(rows: number): string {
  let text = statements.get(rows)
  if (text) return text
  const values: string[] = []
  for (let r = 0; r < rows; r++) {
    const b = r * PER_ROW
    values.push(`($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, $${b + 8})`)
  }
  text = `INSERT INTO webhook_events ${COLUMNS} VALUES ${values.join(', ')} ON CONFLICT (tool_id, id) DO NOTHING`
  statements.set(rows, text)
  return text
}

/**
 * One multi-row `INSERT … ON CONFLICT (tool_id, id) DO NOTHING` of `rows` into webhook_events (the hand-written
 * baselines' store step). Returns the rows inserted. Keep rows × 8 under 65,535 (PostgreSQL's bind limit).
 *
 * @example
 * await insertEvents(pool, [{ event, streamId: '1-0' }])
 */
export async function insertEvents(db: Queryable, rows: readonly BaselineRow[]): Promise<number> {
  if (rows.length === 0) return 0
  const params: unknown[] = new Array(rows.length * PER_ROW)
  let i = 0
  for (const { event: e, streamId, payloadJson } of rows) {
    params[i++] = e.id; params[i++] = e.tool_id; params[i++] = e.tenant_id; params[i++] = e.event_type
    params[i++] = e.repository; params[i++] = payloadJson ?? JSON.stringify(e.payload); params[i++] = streamId; params[i++] = e.timestamp
  }
  return (await db.query(insertSql(rows.length), params)).rowCount ?? 0
}

/** Rows in webhook_events now (the baselines check they stored every event). */
export async function countRows(db: { query(text: string): Promise<{ rows: { n: number | string }[] }> }): Promise<number> {
  return Number((await db.query('SELECT count(*)::int AS n FROM webhook_events')).rows[0]?.n ?? 0)
}
