import { sql, type RawBuilder } from 'kysely'

/** An event's identity: the tool it came through and its (delivery) id. Two tools may send one id. */
export interface EventIdentity { readonly tool_id: string; readonly id: string }

/**
 * `tool_id` and `id` as one string, for sets and maps of identities (a NUL joins them: neither holds one).
 *
 * @example
 * new Set(rows.map(identityOf)).has(identityOf({ tool_id: 'gh', id: 'evt-1' }))
 */
export function identityOf(event: EventIdentity): string {
  return `${event.tool_id}\u0000${event.id}`
}

/**
 * The condition `(tool_id, <idColumn>) IN (…)` over the given identities, with two array parameters whatever
 * their number (so it never nears PostgreSQL's 65,535 bind parameters). Runs on PostgreSQL and PGlite.
 *
 * @example
 * db.selectFrom('webhook_events').selectAll().where(identityIn([{ tool_id: 'gh', id: 'evt-1' }])).execute()
 * db.updateTable('webhook_dlq').set({ status: 'resolved' }).where(identityIn(events, 'event_id'))
 */
export function identityIn(events: readonly EventIdentity[], idColumn: 'id' | 'event_id' = 'id'): RawBuilder<boolean> {
  return sql<boolean>`(tool_id, ${sql.ref(idColumn)}) IN (SELECT * FROM unnest(${events.map((e) => e.tool_id)}::text[], ${events.map((e) => e.id)}::text[]))`
}
