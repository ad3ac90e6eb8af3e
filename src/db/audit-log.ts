import type { Kysely, Transaction } from 'kysely'
import type { Database } from './database.js'

/** What changed: a DLQ entry's fate, a tool's configuration, or stored events sent again. */
export type AuditAction =
  | 'dead_lettered' | 'dlq_requeued' | 'dlq_resolved' | 'dlq_failed' | 'dlq_discarded'
  | 'tool_upserted' | 'tool_deleted' | 'tool_secret_rotated' | 'tool_secret_retired' | 'tools_reencrypted'
  | 'events_replayed'
  | 'destination_added' | 'destination_replaced' | 'destination_updated' | 'destination_removed'
  | 'destination_secret_rotated' | 'destination_secret_retired' | 'destination_auto_disabled'

/** One audit row to write; `details` is any JSON value (never a secret). */
export interface AuditRecord {
  readonly entity: 'dlq' | 'tool' | 'event'
  readonly action: AuditAction
  readonly actor: string
  /** The event's delivery id with its tool, for DLQ rows; both absent for tool changes. */
  readonly eventId?: string
  readonly toolId?: string
  readonly details: unknown
}

/**
 * Appends rows to `webhook_audit_log` in one statement, inside the caller's transaction so the audit row
 * and the change it records commit together. The only place that writes the audit log.
 *
 * @example
 * await db.transaction().execute(async (trx) => {
 *   await trx.updateTable('webhook_dlq')…
 *   await appendAudit(trx, [{ entity: 'dlq', action: 'dlq_discarded', actor: 'admin', eventId, toolId, details: { dlq_id: 7 } }])
 * })
 */
export async function appendAudit(db: Kysely<Database> | Transaction<Database>, records: readonly AuditRecord[]): Promise<void> {
  if (records.length === 0) return
  await db.insertInto('webhook_audit_log').values(records.map((r) => ({
    entity: r.entity, action: r.action, actor: r.actor, event_id: r.eventId ?? null, tool_id: r.toolId ?? null,
    details: JSON.stringify(r.details),
  }))).execute()
}
