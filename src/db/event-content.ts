import type { Kysely } from 'kysely'
import type { Database } from './database.js'
import { unavailableOr } from './database-error.js'

/** What one event carried: its payload, the transform's output and the inbound headers that were kept. */
export interface EventContent {
  /** The stored payload, or the dead-lettered event's payload when the event was never stored; null when neither holds it as JSON. */
  readonly payload: unknown
  /** The transform's output (`transform_and_store`), else null. */
  readonly transformed: unknown
  /**
   * The inbound headers ingest kept (credentials were dropped before queueing), from the event's newest DLQ row:
   * stored rows do not keep headers, so null when the event was never dead-lettered.
   */
  readonly headers: Readonly<Record<string, unknown>> | null
}

/**
 * Reads the payload and kept headers of the event (`toolId`, `eventId`) from `webhook_events` and its newest
 * `webhook_dlq` row; undefined when neither has it.
 *
 * @example
 * const content = await eventContent(db, 'gh-main', '3f0c…')
 * if (content) console.log(content.payload)
 */
export async function eventContent(db: Kysely<Database>, toolId: string, eventId: string): Promise<EventContent | undefined> {
  try {
    const [stored, dead] = await Promise.all([
      db.selectFrom('webhook_events').select(['payload', 'transformed']).where('tool_id', '=', toolId).where('id', '=', eventId).executeTakeFirst(),
      db.selectFrom('webhook_dlq').select(['event']).where('tool_id', '=', toolId).where('event_id', '=', eventId).orderBy('id', 'desc').limit(1).executeTakeFirst(),
    ])
    if (!stored && !dead) return undefined
    const event = (dead?.event ?? null) as { payload?: unknown; metadata?: { headers?: unknown } } | null
    const headers = event?.metadata?.headers
    return {
      payload: stored ? stored.payload : event?.payload ?? null,
      transformed: stored?.transformed ?? null,
      headers: typeof headers === 'object' && headers !== null && !Array.isArray(headers) ? headers as Record<string, unknown> : null,
    }
  } catch (err) {
    throw unavailableOr(err, `reading the content of event "${eventId.slice(0, 255)}" of tool "${toolId.slice(0, 128)}"`)
  }
}
