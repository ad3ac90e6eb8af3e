import { defer, finalize } from 'rxjs'
import type { Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { acceptsEventType, type Destination } from '../core/destination.js'
import type { Envelope } from '../core/envelope.js'
import { isPipelineError } from '../core/errors.js'
import type { ToolConfig } from '../core/tool.js'
import type { Database } from '../db/database.js'
import { DeliveryStateStore, type DeliveryStateChange } from '../db/delivery-states.js'
import { identityOf } from '../db/event-identity.js'
import { enqueueDeliveries } from '../sources/enqueue-deliveries.js'
import type { StreamKeys } from '../sources/keys.js'
import { batchStep, type BatchStage } from './batch-step.js'
import { runDestinationExpression } from './destination-expression.js'
import type { HoldOptions } from './hold.js'
import { TransformPool, type TransformPoolOptions } from './transform-pool.js'

/** Options of `fanOut`. */
export interface FanOutOptions {
  /** Redis with the delivery stream (`keys.deliveryStream`). */
  readonly redis: Pick<Redis, 'call'>
  /** PostgreSQL, for the fan-out state (`webhook_events.deliveries`). */
  readonly db: Kysely<Database>
  /** @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** How long (s) an event's "fanned out" marker lives (WORKER_IDEMPOTENCY_TTL). @defaultValue 86400 */
  readonly ttlSeconds?: number
  /** Passed to the infrastructure hold (PostgreSQL or Redis down). */
  readonly hold?: HoldOptions
  /** The worker processes that evaluate the destinations' filters; see `TransformPoolOptions`. */
  readonly pool?: TransformPoolOptions
}

type Stored = Envelope & { readonly tool?: ToolConfig; readonly stored?: boolean }
interface Decided<E> { readonly env: E; readonly changes: readonly DeliveryStateChange[] }

const fansOut = (env: Stored): boolean => !env.failure && env.stored === true && (env.tool?.destinations?.length ?? 0) > 0
// a dead-lettered delivery re-queued from the DLQ comes back on the main stream, where the event's row is there
// already: store says `duplicate`, or, in store_and_forward mode while the forward is still to do, no outcome yet
// (a row stored anew has no failed delivery, so looking costs one query and finds none)
const redrive = (env: Stored): boolean => !env.failure && env.stored === true && env.message.event.retry_count > 0

async function stateOf(pool: TransformPool, env: Stored, d: Destination): Promise<Omit<DeliveryStateChange, 'event' | 'destinationId'>> {
  if (!d.enabled) return { state: 'disabled' }
  if (!acceptsEventType(d, env.message.event.event_type)) return { state: 'filtered' }
  if (d.filter === undefined) return { state: 'pending' }
  const outcome = await runDestinationExpression(pool, env, d.filter, (env.tool as ToolConfig).transformTimeoutMs)
  if (!outcome.ok) return { state: 'failed', errorCode: outcome.code }
  return { state: outcome.value === true ? 'pending' : 'filtered' }
}

/**
 * After the store: decides, per stored event and per destination of its tool, whether the event goes there
 * (enabled, event type accepted, JSONata filter true), records each destination's state on the row
 * (`pending`, `filtered`, `disabled`, or `failed` when the filter failed), and writes one delivery entry per
 * pending destination to the delivery stream, where the delivery pipeline delivers each pair with its own
 * retries. The event itself is then settled as usual: a slow or dead destination never holds it. Filters run
 * in the transform worker processes within the tool's `transform_timeout`. A dead-lettered delivery re-queued
 * from the DLQ arrives as a duplicate event: its failed pairs are enqueued again. PostgreSQL or Redis down holds
 * the batch.
 * Events without destinations, failed or not stored pass through untouched.
 *
 * @example
 * batches$.pipe(store({ db }), fanOut({ redis, db, keys }), settle())
 */
export function fanOut<E extends Stored>(options: FanOutOptions): BatchStage<E> {
  if (!options.redis || !options.db) throw new TypeError('fanOut: "redis" and "db" are required')
  const states = new DeliveryStateStore({ db: options.db })
  // checks the pool's options now rather than on the first event; workers start only with a first filter
  new TransformPool(options.pool)
  const enqueue = { redis: options.redis, ...(options.keys ? { keys: options.keys } : {}), ...(options.ttlSeconds ? { ttlSeconds: options.ttlSeconds } : {}) }

  const write = async (decided: readonly Decided<E>[], envs: readonly E[]): Promise<readonly E[]> => {
    const open = decided.filter((d) => d.changes.length > 0)
    try {
      // the states first: once an entry is on the stream its delivery may record "delivered" at any moment
      await states.start(open.flatMap((d) => d.changes))
    } catch (err) {
      if (!isPipelineError(err) || err.kind === 'infrastructure') throw err
      const failure = err
      return decided.map((d) => (d.changes.length > 0 ? { ...d.env, outcome: undefined, failure } : d.env))
    }
    await enqueueDeliveries(enqueue, open.map(({ env, changes }) => ({
      toolId: env.message.event.tool_id, eventId: env.message.event.id, fields: env.message.fields,
      destinationIds: changes.filter((c) => c.state === 'pending').map((c) => c.destinationId),
    })))
    await redriveFailed(envs)
    return envs
  }

  // the failed pairs each batch re-drives, found once: they are `pending` from the first run on, so a hold that runs
  // the batch again (Redis down for the enqueue) must enqueue the same pairs rather than look for failed ones again
  const redriven = new WeakMap<readonly E[], readonly { env: E; ids: readonly string[] }[]>()
  // its failed pairs are delivered again (the DLQ row is then resolved as for any re-queued event)
  const redriveFailed = async (batch: readonly E[]): Promise<void> => {
    let again = redriven.get(batch)
    if (!again) {
      const envs = batch.filter(redrive)
      if (envs.length === 0) return
      const failed = await states.failed(envs.map((env) => env.message.event))
      again = envs.flatMap((env) => {
        const ids = failed.get(identityOf(env.message.event)) ?? []
        return ids.length > 0 ? [{ env, ids }] : []
      })
      redriven.set(batch, again)
    }
    const event = (env: E) => ({ tool_id: env.message.event.tool_id, id: env.message.event.id })
    await states.set(again.flatMap(({ env, ids }) => ids.map((destinationId) => ({ event: event(env), destinationId, state: 'pending' as const }))))
    await enqueueDeliveries({ ...enqueue, once: false }, again.map(({ env, ids }) => ({
      toolId: env.message.event.tool_id, eventId: env.message.event.id, fields: env.message.fields, destinationIds: ids,
    })))
  }

  return (source) => defer(() => {
    const pool = new TransformPool(options.pool)
    const decide = async (env: E): Promise<Decided<E>> => {
      if (!fansOut(env)) return { env, changes: [] }
      const event = { tool_id: env.message.event.tool_id, id: env.message.event.id }
      const changes = await Promise.all((env.tool?.destinations ?? []).map(async (d) => ({ event, destinationId: d.id, ...await stateOf(pool, env, d) })))
      return { env, changes }
    }
    // filters are evaluated once per batch; a hold (PostgreSQL or Redis down) retries only the writes
    const decisions = new WeakMap<readonly E[], Promise<readonly Decided<E>[]>>()
    const fanOutBatch = async (envs: readonly E[]) => {
      let decided = decisions.get(envs)
      if (!decided) {
        decisions.set(envs, (decided = Promise.all(envs.map(decide))))
        // a failed evaluation is not kept: the next run of the batch evaluates again
        decided.catch(() => decisions.delete(envs))
      }
      return write(await decided, envs)
    }
    return source.pipe(
      batchStep((envs) => (envs.some(fansOut) || envs.some(redrive) ? fanOutBatch(envs) : envs), options.hold ? { hold: options.hold } : {}),
      finalize(() => void pool.close()),
    )
  })
}
