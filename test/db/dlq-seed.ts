/** Test helpers: DLQ rows as toDLQ writes them, and the events on a stream. */
import type { Redis } from 'ioredis'
import type { StreamEvent } from '../../src/core/event.js'
import type { Db, DlqStatus } from '../../src/db/database.js'
import { entryEvent, makeEvent } from '../helpers/events.js'

/** Inserts DLQ rows the way toDLQ writes them. */
export async function seedDlq(handle: Db, rows: { event?: Partial<StreamEvent>; status?: DlqStatus; retry_count?: number; undecodable?: boolean; failed_at?: string }[]): Promise<{ id: number; event: StreamEvent }[]> {
  const out: { id: number; event: StreamEvent }[] = []
  for (const r of rows) {
    const event = makeEvent({ auth_context: { provider: 'github', scheme: 'hmac-sha256' }, metadata: { headers: { 'x-github-event': 'push' } }, ...r.event })
    const stored = r.undecodable ? { undecodable: true, stream_id: '1-0', fields: { event: '{"id": broken' } } : event
    const row = await handle.db.insertInto('webhook_dlq').values({
      event_id: r.undecodable ? `undecodable:${event.id}` : event.id, tool_id: event.tool_id, event: JSON.stringify(stored),
      error: 'forward to tool got HTTP 400', error_class: 'permanent', error_code: r.undecodable ? 'UNDECODABLE_ENTRY' : 'DESTINATION_4XX',
      retry_count: r.retry_count ?? 0, status: r.status ?? 'pending', next_retry_at: new Date(Date.now() - 1000),
      ...(r.failed_at ? { failed_at: r.failed_at } : {}),
    }).returning('id').executeTakeFirstOrThrow()
    out.push({ id: row.id, event })
  }
  return out
}

/** The StreamEvents on `stream`, oldest first. */
export async function streamEvents(redis: Redis, stream: string): Promise<StreamEvent[]> {
  const entries = (await redis.xrange(stream, '-', '+')) as [string, string[]][]
  return entries.map(([, fields]) => entryEvent(fields))
}

