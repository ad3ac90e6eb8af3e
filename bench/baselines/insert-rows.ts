import type { StreamEvent } from '../../src/core/event.js'

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
export async function insertEvents(db: Queryable, rows: readonly { event: StreamEvent; streamId: string }[]): Promise<number> {
  if (rows.length === 0) return 0
  const params: unknown[] = new Array(rows.length * PER_ROW)
  let i = 0
  for (const { event: e, streamId } of rows) {
    params[i++] = e.id; params[i++] = e.tool_id; params[i++] = e.tenant_id; params[i++] = e.event_type
    params[i++] = e.repository; params[i++] = JSON.stringify(e.payload); params[i++] = streamId; params[i++] = e.timestamp
  }
  return (await db.query(insertSql(rows.length), params)).rowCount ?? 0
}

/** Rows in webhook_events now (the baselines check they stored every event). */
export async function countRows(db: { query(text: string): Promise<{ rows: { n: number | string }[] }> }): Promise<number> {
  return Number((await db.query('SELECT count(*)::int AS n FROM webhook_events')).rows[0]?.n ?? 0)
}
