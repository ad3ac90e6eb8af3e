import type { Redis } from 'ioredis'
import { PipelineError } from '../core/errors.js'
import { DEFAULT_KEYS, fanoutKey, type StreamKeys } from './keys.js'
import { redisScript, runScript } from './redis-script.js'

/** The deliveries of one stored event: its stream entry's fields and the destinations it goes to. */
export interface EventDeliveries {
  readonly toolId: string
  readonly eventId: string
  /** The event's stream entry fields (as read, or rebuilt from a stored row); each delivery entry carries them. */
  readonly fields: Readonly<Record<string, string>>
  /** Destination ids the event is delivered to. */
  readonly destinationIds: readonly string[]
}

/** Field of a delivery entry naming its destination. */
export const DESTINATION_FIELD = 'destination'
/** Field of a delivery entry that marks it as a replay's (its value is the replay id); absent on a fan-out's. */
export const REPLAY_FIELD = 'replay_id'
// a parked retry's bookkeeping belongs to the step that parked it, not to the deliveries
const STEP_FIELDS = new Set(['attempts', 'first_attempt_at', DESTINATION_FIELD])

// per event: its marker is set and its deliveries added together, or neither (a crash in between is impossible)
const ENQUEUE = redisScript(`
local added = 0
local once = ARGV[2] == '1'
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', tonumber(ARGV[1])) or not once then
    for _, fields in ipairs(cjson.decode(ARGV[i + 1])) do
      redis.call('XADD', KEYS[1], '*', unpack(fields))
      added = added + 1
    end
  end
end
return added`)

/** Options of `enqueueDeliveries`. */
export interface EnqueueDeliveriesOptions {
  readonly redis: Pick<Redis, 'call'>
  /** The delivery stream and the marker prefix (a partition's key set on a Cluster). @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** How long (s) an event's "fanned out" marker lives (WORKER_IDEMPOTENCY_TTL). @defaultValue 86400 */
  readonly ttlSeconds?: number
  /**
   * Enqueue an event only if its marker is not set yet (the fan-out). `false` enqueues again whatever the marker
   * says: a replay of pairs that failed (a pair already delivered is still skipped by the delivery pipeline's
   * done marker while that lives). @defaultValue true
   */
  readonly once?: boolean
}

/**
 * Writes one entry per (event, destination) to the delivery stream, where the delivery pipeline picks them up.
 * Each event is fanned out at most once while its marker lives: the marker and the entries are written by one
 * script, so an event redelivered after a crash enqueues nothing again. This is also the entry point for
 * delivering stored events again. Resolves with the number of entries added; rejects with an infrastructure
 * `REDIS_UNAVAILABLE` when Redis fails.
 *
 * @example
 * await enqueueDeliveries({ redis, keys }, [{ toolId: 'gh', eventId: 'msg_1', fields: message.fields, destinationIds: ['ci', 'billing'] }])
 */
export async function enqueueDeliveries(options: EnqueueDeliveriesOptions, events: readonly EventDeliveries[]): Promise<number> {
  const keys = options.keys ?? DEFAULT_KEYS
  const ttlSeconds = options.ttlSeconds ?? 86_400
  const open = events.filter((e) => e.destinationIds.length > 0)
  if (open.length === 0) return 0
  const args = open.map((e) => {
    const base = Object.entries(e.fields).filter(([k]) => !STEP_FIELDS.has(k)).flat()
    return JSON.stringify(e.destinationIds.map((id) => [...base, DESTINATION_FIELD, id]))
  })
  try {
    return Number(await runScript(options.redis, ENQUEUE, [keys.deliveryStream, ...open.map((e) => fanoutKey(keys, e.toolId, e.eventId))], [ttlSeconds, options.once === false ? '0' : '1', ...args]))
  } catch (err) {
    throw new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
      `enqueueing the deliveries of ${open.length} events failed: ${(err as Error).message}; the events are held until Redis answers`, { cause: err })
  }
}
