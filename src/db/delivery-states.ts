import { sql, type Kysely } from 'kysely'
import type { Database, DeliveryState, DeliveryStates } from './database.js'
import { classifyDatabaseError } from './database-error.js'
import { identityIn, identityOf, type EventIdentity } from './event-identity.js'

/** One (event, destination) pair's new state. */
export interface DeliveryStateChange {
  readonly event: EventIdentity
  readonly destinationId: string
  readonly state: DeliveryState
  /** Retries so far. */
  readonly attempts?: number
  /** Why a pair failed (a PipelineError code). */
  readonly errorCode?: string
}

// one jsonb object per event: PostgreSQL's UPDATE … FROM uses one joined row per target row, so two changes to one
// event in a batch must be merged before they are sent
function merged(changes: readonly DeliveryStateChange[], at: string): { toolIds: string[]; ids: string[]; states: string[] } {
  const byEvent = new Map<string, { event: EventIdentity; states: DeliveryStates }>()
  for (const c of changes) {
    const k = `${c.event.tool_id}\u0000${c.event.id}`
    let entry = byEvent.get(k)
    if (!entry) byEvent.set(k, (entry = { event: c.event, states: {} }))
    entry.states[c.destinationId] = {
      state: c.state, at, ...(c.attempts !== undefined ? { attempts: c.attempts } : {}), ...(c.errorCode ? { error_code: c.errorCode } : {}),
    }
  }
  const list = [...byEvent.values()]
  return { toolIds: list.map((e) => e.event.tool_id), ids: list.map((e) => e.event.id), states: list.map((e) => JSON.stringify(e.states)) }
}

/**
 * The fan-out state of stored events (`webhook_events.deliveries`): per destination id, `pending`, `delivered`,
 * `failed`, `filtered` or `disabled`, with the attempt count and the last error code. Each call is one UPDATE
 * for any number of events (arrays through `unnest`, so no bind-parameter limit applies).
 *
 * @example
 * const states = new DeliveryStateStore({ db })
 * await states.start([{ event, destinationId: 'billing', state: 'pending' }])
 * await states.set([{ event, destinationId: 'billing', state: 'delivered' }])
 */
export class DeliveryStateStore {
  private readonly db: Kysely<Database>

  constructor(options: { readonly db: Kysely<Database> }) {
    if (!options?.db) throw new TypeError('DeliveryStateStore: "db" must be a Kysely instance (see createDb)')
    this.db = options.db
  }

  /**
   * Records the fan-out's first states; a destination that already has a state keeps it (a redelivered event
   * fanned out again never turns `delivered` back into `pending`). Rejects with a PipelineError from
   * `classifyDatabaseError` (infrastructure when PostgreSQL is down or the table is missing).
   */
  async start(changes: readonly DeliveryStateChange[]): Promise<void> {
    await this.write(changes, 'first')
  }

  /**
   * Records new states of pairs (delivered, failed, or pending again with a higher attempt count); a `pending`
   * never replaces `delivered`, which is final.
   */
  async set(changes: readonly DeliveryStateChange[]): Promise<void> {
    await this.write(changes, 'last')
  }

  /**
   * The recorded state of each event's destinations, by `identityOf(event)`; events without any are left out. For
   * re-driving dead-lettered deliveries (the pairs `failed`).
   */
  async read(events: readonly EventIdentity[]): Promise<Map<string, DeliveryStates>> {
    const out = new Map<string, DeliveryStates>()
    if (events.length === 0) return out
    try {
      const rows = await this.db.selectFrom('webhook_events').select(['tool_id', 'id', 'deliveries']).where(identityIn(events)).execute()
      for (const row of rows) if (row.deliveries) out.set(identityOf(row), row.deliveries)
      return out
    } catch (err) {
      throw classifyDatabaseError(err, `reading the delivery state of ${events.length} events`)
    }
  }

  private async write(changes: readonly DeliveryStateChange[], wins: 'first' | 'last'): Promise<void> {
    if (changes.length === 0) return
    const { toolIds, ids, states } = merged(changes, new Date().toISOString())
    const current = sql`coalesce(e.deliveries, '{}'::jsonb)`
    // a parked retry's `pending` may be written after another worker delivered the same pair from the retry's
    // re-enqueued copy: `delivered` is final, so a later `pending` never replaces it
    const fresh = sql`(SELECT coalesce(jsonb_object_agg(n.key, n.value), '{}'::jsonb) FROM jsonb_each(v.d::jsonb) AS n
      WHERE NOT (n.value->>'state' = 'pending' AND ${current}->n.key->>'state' = 'delivered'))`
    const next = wins === 'first' ? sql`v.d::jsonb || ${current}` : sql`${current} || ${fresh}`
    try {
      await sql`UPDATE webhook_events AS e SET deliveries = ${next}
        FROM unnest(${toolIds}::text[], ${ids}::text[], ${states}::text[]) AS v(tool_id, id, d)
        WHERE e.tool_id = v.tool_id AND e.id = v.id`.execute(this.db)
    } catch (err) {
      throw classifyDatabaseError(err, `recording the delivery state of ${ids.length} events`)
    }
  }
}
