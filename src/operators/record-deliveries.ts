import type { Kysely } from 'kysely'
import type { Destination } from '../core/destination.js'
import type { Envelope } from '../core/envelope.js'
import { isPipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { DeliveryStateStore, type DeliveryStateChange } from '../db/delivery-states.js'
import { DESTINATION_FIELD } from '../sources/enqueue-deliveries.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { HoldOptions } from './hold.js'

/** Options of `recordDeliveries`. */
export interface RecordDeliveriesOptions {
  readonly db: Kysely<Database>
  /** Passed to the infrastructure hold (PostgreSQL down). */
  readonly hold?: HoldOptions
  /** Told when a state could not be recorded for a reason other than PostgreSQL being down (the delivery still settles). */
  readonly onUnrecorded?: (err: Error) => void
}

type Delivered = Envelope & { readonly destination?: Destination }

function changeOf(env: Delivered): DeliveryStateChange | undefined {
  const d = env.destination
  const id = d?.id ?? env.message.fields[DESTINATION_FIELD]
  if (!id) return undefined
  const event = { tool_id: env.message.event.tool_id, id: env.message.event.id }
  if (env.failure) return { event, destinationId: id, state: 'failed', attempts: env.attempts, errorCode: env.failure.code }
  if (env.outcome === 'forwarded') return { event, destinationId: id, state: 'delivered', attempts: env.attempts }
  if (env.outcome === 'parked') return { event, destinationId: id, state: 'pending', attempts: env.attempts }
  return undefined
}

/**
 * Records each delivery's outcome in its event's fan-out state (`webhook_events.deliveries`): `delivered`,
 * `failed` with the error code (before the DLQ takes it), or still `pending` with the retry count when the retry
 * was parked. One UPDATE per batch; PostgreSQL down holds the batch. The state is a record, not the delivery's
 * fate: a state PostgreSQL refuses goes to `onUnrecorded` and the envelope passes on unchanged.
 *
 * @example
 * batches$.pipe(retryBackoff({ step: deliverStep({ sink, pool }) }), recordDeliveries({ db }), toDLQ({ db, redis }))
 */
export function recordDeliveries<E extends Delivered>(options: RecordDeliveriesOptions): BatchStage<E> {
  const states = new DeliveryStateStore({ db: options.db })
  const record = async (envs: readonly E[], changes: readonly DeliveryStateChange[]): Promise<readonly E[]> => {
    try {
      await states.set(changes)
    } catch (err) {
      if (!isPipelineError(err) || err.kind === 'infrastructure') throw err
      options.onUnrecorded?.(err)
    }
    return envs
  }
  return batchStep((envs) => {
    const changes = envs.map(changeOf).filter((c): c is DeliveryStateChange => c !== undefined)
    return changes.length === 0 ? envs : record(envs, changes)
  }, options.hold ? { hold: options.hold } : {})
}
