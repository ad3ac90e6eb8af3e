import { defer, finalize } from 'rxjs'
import type { Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { acceptsEventType, type Destination } from '../core/destination.js'
import type { Envelope } from '../core/envelope.js'
import { isPipelineError, PipelineError } from '../core/errors.js'
import type { ToolConfig } from '../core/tool.js'
import type { Database } from '../db/database.js'
import { DeliveryStateStore, type DeliveryStateChange } from '../db/delivery-states.js'
import { identityOf } from '../db/event-identity.js'
import { enqueueDeliveries } from '../sources/enqueue-deliveries.js'
import type { StreamKeys } from '../sources/keys.js'
import { batchStep, type BatchStage } from './batch-step.js'
import { runDestinationExpression } from './destination-expression.js'
import type { HoldOptions } from './hold.js'
import { deadLetterWriter, type ToDLQOptions } from './to-dlq.js'
import { TransformPool, type TransformPoolOptions } from './transform-pool.js'

/** Options of `fanOut`. */
export interface FanOutOptions {
  /** Redis with the delivery stream (`keys.deliveryStream`) and the DLQ stream (`keys.dlqStream`). */
  readonly redis: Pick<Redis, 'call' | 'pipeline'>
  /** PostgreSQL, for the fan-out state (`webhook_events.deliveries`) and the dead letters of failed filters. */
  readonly db: Kysely<Database>
  /** @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** How long (s) an event's "fanned out" marker lives (WORKER_IDEMPOTENCY_TTL). @defaultValue 86400 */
  readonly ttlSeconds?: number
  /** Passed to the infrastructure hold (PostgreSQL or Redis down). */
  readonly hold?: HoldOptions
  /** The worker processes that evaluate the destinations' filters; see `TransformPoolOptions`. */
  readonly pool?: TransformPoolOptions
  /**
   * How an event whose destination's filter failed is dead-lettered (as `toDLQ`'s options: the DLQ policy, the DLQ
   * stream's cap, the audit actor, `onDeadLettered`, `onStatusChange`, tracing). @defaultValue toDLQ's defaults
   */
  readonly dlq?: Pick<ToDLQOptions, 'policy' | 'maxLen' | 'actor' | 'onDeadLettered' | 'onStatusChange' | 'tracing'>
}

type Stored = Envelope & { readonly tool?: ToolConfig; readonly stored?: boolean }
/** Why a destination's filter failed on an event: the transform pool's code and message. */
interface FilterFailure { readonly code: string; readonly message: string }
interface Decided<E> {
  readonly env: E
  readonly changes: readonly DeliveryStateChange[]
  /** The destinations whose filter failed, by id. */
  readonly failed: ReadonlyMap<string, FilterFailure>
}
/** What a batch writes beyond its first states: the events to dead-letter, and the re-driven events' failed pairs. */
interface Plan<E> {
  readonly deadLetters: readonly { readonly env: E; readonly failed: ReadonlyMap<string, FilterFailure> }[]
  readonly redrives: readonly { readonly env: E; readonly changes: readonly DeliveryStateChange[] }[]
}

/** The code of a (event, destination) pair whose filter failed: its state's `error_code` and its DLQ row's. */
export const FILTER_FAILED = 'DESTINATION_FILTER_FAILED'

const fansOut = (env: Stored): boolean => !env.failure && env.stored === true && (env.tool?.destinations?.length ?? 0) > 0
// a dead-lettered delivery re-queued from the DLQ comes back on the main stream, where the event's row is there
// already: store says `duplicate`, or, in store_and_forward mode while the forward is still to do, no outcome yet
// (a row stored anew has no failed delivery, so looking costs one query and finds none)
const redrive = (env: Stored): boolean => !env.failure && env.stored === true && env.message.event.retry_count > 0

async function stateOf(pool: TransformPool, env: Stored, d: Destination): Promise<Omit<DeliveryStateChange, 'event' | 'destinationId'> & { failure?: FilterFailure }> {
  if (!d.enabled) return { state: 'disabled' }
  if (!acceptsEventType(d, env.message.event.event_type)) return { state: 'filtered' }
  if (d.filter === undefined) return { state: 'pending' }
  const outcome = await runDestinationExpression(pool, env, d.filter, (env.tool as ToolConfig).transformTimeoutMs)
  if (!outcome.ok) return { state: 'failed', errorCode: FILTER_FAILED, failure: { code: outcome.code, message: outcome.message } }
  return { state: outcome.value === true ? 'pending' : 'filtered' }
}

// one failure per event (its DLQ row is one), naming each destination whose filter failed and why
function filterFailure(env: Stored, failed: ReadonlyMap<string, FilterFailure>): PipelineError {
  const tool = env.message.event.tool_id
  const parts = [...failed].map(([id, f]) => `destination "${id}" of tool "${tool}": its filter failed (${f.code}) on event ${env.message.event.id}: ${f.message}`)
  const slow = [...failed.values()].some((f) => f.code !== 'TRANSFORM_FAILED')
  return new PipelineError('permanent', FILTER_FAILED, `${parts.join('; ')}; fix the filter${slow ? ' (or make it cheaper, or raise the tool\'s transform_timeout)' : ''} and retry the event from the DLQ, which evaluates it again`)
}

/**
 * After the store: decides, per stored event and per destination of its tool, whether the event goes there
 * (enabled, event type accepted, JSONata filter true), records each destination's state on the row
 * (`pending`, `filtered`, `disabled`, or `failed` with `DESTINATION_FILTER_FAILED` when the filter failed), and
 * writes one delivery entry per pending destination to the delivery stream, where the delivery pipeline delivers
 * each pair with its own retries. The event itself is then settled as usual: a slow or dead destination never
 * holds it. Filters run in the transform worker processes within the tool's `transform_timeout`. An event whose
 * filter failed for some destination is dead-lettered beside (one `webhook_dlq` row naming each such destination
 * and why, as `toDLQ` writes it, before the states), while the event itself goes on stored. A dead-lettered
 * delivery re-queued from the DLQ arrives as a duplicate event: each of its failed pairs is decided again (its
 * filter evaluated anew) and enqueued, recorded `filtered`, or dead-lettered again. PostgreSQL or Redis down holds
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

  const deadLetter = deadLetterWriter<E>({ db: options.db, redis: options.redis, ...(options.keys ? { keys: options.keys } : {}), ...options.dlq })
  const event = (env: E) => ({ tool_id: env.message.event.tool_id, id: env.message.event.id })

  // what a batch writes beyond its first states, found once: a re-driven event's failed pairs are `pending` from the
  // first run on, so a hold that runs the batch again (Redis down for the enqueue) must write the same plan rather
  // than look for failed pairs again
  const plans = new WeakMap<readonly Decided<E>[], Plan<E>>()
  const planOf = async (decided: readonly Decided<E>[]): Promise<Plan<E>> => {
    let plan = plans.get(decided)
    if (plan) return plan
    const redriving = decided.filter((d) => redrive(d.env))
    const recorded = await states.read(redriving.map((d) => d.env.message.event))
    const deadLetters: Plan<E>['deadLetters'][number][] = []
    const redrives: Plan<E>['redrives'][number][] = []
    for (const d of decided) {
      // a re-driven event keeps the states it has (start never replaces one): of its decisions only those of the
      // pairs that failed count, and of destinations it has no state for yet (a first fan-out after a failed store)
      const had = redrive(d.env) ? recorded.get(identityOf(d.env.message.event)) ?? {} : undefined
      const failed = new Map([...d.failed].filter(([id]) => !had || had[id] === undefined || had[id].state === 'failed'))
      if (failed.size > 0) deadLetters.push({ env: d.env, failed })
      if (!had) continue
      // each failed pair is decided again: its filter now passes (or it has none) → delivered again, refuses → filtered,
      // fails → failed and dead-lettered again; a destination disabled or removed since is enqueued as before, and
      // the delivery pipeline dead-letters it with DESTINATION_DISABLED / DESTINATION_REMOVED
      const changes = Object.entries(had).filter(([, s]) => s.state === 'failed').map(([id]): DeliveryStateChange => {
        const now = d.changes.find((c) => c.destinationId === id)
        if (now?.state === 'filtered' || now?.state === 'failed') return now
        return { event: event(d.env), destinationId: id, state: 'pending' }
      })
      if (changes.length > 0) redrives.push({ env: d.env, changes })
    }
    plans.set(decided, (plan = { deadLetters, redrives }))
    return plan
  }

  const write = async (decided: readonly Decided<E>[], envs: readonly E[]): Promise<readonly E[]> => {
    const plan = await planOf(decided)
    // the dead letters first: a pair recorded `failed` then always has its DLQ row, even after a crash in between
    if (plan.deadLetters.length > 0) await deadLetter(plan.deadLetters.map(({ env, failed }) => ({ ...env, failure: filterFailure(env, failed) })))
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
    // a re-driven event's failed pairs (the DLQ row is then resolved as for any re-queued event)
    await states.set(plan.redrives.flatMap((r) => r.changes))
    await enqueueDeliveries({ ...enqueue, once: false }, plan.redrives.map(({ env, changes }) => ({
      toolId: env.message.event.tool_id, eventId: env.message.event.id, fields: env.message.fields,
      destinationIds: changes.filter((c) => c.state === 'pending').map((c) => c.destinationId),
    })))
    return envs
  }

  return (source) => defer(() => {
    const pool = new TransformPool(options.pool)
    const decide = async (env: E): Promise<Decided<E>> => {
      if (!fansOut(env)) return { env, changes: [], failed: new Map() }
      const destinations = env.tool?.destinations ?? []
      const decided = await Promise.all(destinations.map((d) => stateOf(pool, env, d)))
      const changes = decided.map(({ failure: _failure, ...state }, i): DeliveryStateChange => ({ event: event(env), destinationId: destinations[i]!.id, ...state }))
      const failed = new Map(decided.flatMap(({ failure }, i) => (failure ? [[destinations[i]!.id, failure] as const] : [])))
      return { env, changes, failed }
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
