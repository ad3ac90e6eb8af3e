import { createHash } from 'node:crypto'

/** Every Redis key and stream name hookstream uses, in one place, so they are configured in one place. */
export interface StreamKeys {
  /** Main stream. @defaultValue "webhook_events" */
  readonly stream: string
  /** Dead-letter stream. @defaultValue "webhook_events_dlq" */
  readonly dlqStream: string
  /** Consumer group of the workers. @defaultValue "webhook_workers" */
  readonly group: string
  /** Prefix of idempotency keys; the key of an event is `<prefix><tool id>:<event id>`. @defaultValue "webhook:idempotency:" */
  readonly idempotencyPrefix: string
  /** Sorted set of events parked for a later retry, scored by due time (ms). @defaultValue "webhook:delayed" */
  readonly delayed: string
  /** Prefix of ingest's "delivery seen" hashes (see `deliverySeen`). @defaultValue "webhook:delivery:" */
  readonly deliveryPrefix: string
  /** Prefix of ingest's per-tool rate-limit buckets. @defaultValue "webhook:ratelimit:" */
  readonly rateLimitPrefix: string
  /** Stream of (event, destination) deliveries the fan-out writes. @defaultValue "webhook_deliveries" */
  readonly deliveryStream: string
  /** Consumer group of the delivery workers. @defaultValue "webhook_delivery_workers" */
  readonly deliveryGroup: string
  /** Prefix of the "fanned out" markers; an event's is `<prefix><tool id>:<event id>`. @defaultValue "webhook:fanout:" */
  readonly fanoutPrefix: string
  /** Prefix of the "delivered" markers; a pair's is `<prefix><destination id>:<tool id>:<event id>`. @defaultValue "webhook:delivered:" */
  readonly deliveredPrefix: string
  /** Prefix of the per-destination delivery rate-limit buckets. @defaultValue "webhook:destination-ratelimit:" */
  readonly destinationRateLimitPrefix: string
  /** Hash of the destinations' circuit-breaker states (field: destination id, value: JSON). @defaultValue "webhook:breakers" */
  readonly breakerStates: string
}

/** The contract's names (DESIGN.md). */
export const DEFAULT_KEYS: StreamKeys = Object.freeze({
  stream: 'webhook_events',
  dlqStream: 'webhook_events_dlq',
  group: 'webhook_workers',
  idempotencyPrefix: 'webhook:idempotency:',
  delayed: 'webhook:delayed',
  deliveryPrefix: 'webhook:delivery:',
  rateLimitPrefix: 'webhook:ratelimit:',
  deliveryStream: 'webhook_deliveries',
  deliveryGroup: 'webhook_delivery_workers',
  fanoutPrefix: 'webhook:fanout:',
  deliveredPrefix: 'webhook:delivered:',
  destinationRateLimitPrefix: 'webhook:destination-ratelimit:',
  breakerStates: 'webhook:breakers',
})

/**
 * Builds the key set, with every name under `prefix` when given (tests and multi-tenant deployments give each
 * its own key-space) and any name overridden.
 *
 * @example
 * streamKeys({ prefix: 'staging:' }).stream // "staging:webhook_events"
 */
export function streamKeys(options: Partial<StreamKeys> & { prefix?: string } = {}): StreamKeys {
  const { prefix = '', ...overrides } = options
  const base = Object.fromEntries(
    Object.entries(DEFAULT_KEYS).map(([k, v]) => [k, k === 'group' || k === 'deliveryGroup' ? v : `${prefix}${v}`]),
  ) as unknown as StreamKeys
  return Object.freeze({ ...base, ...overrides })
}

/** The value of an idempotency key once the event's fate is durable. */
export const DONE_MARKER = 'done'

/**
 * The idempotency key of one event: `<prefix><tool id>:<event id>`. An event is identified by its tool and its
 * delivery id, since senders choose delivery ids and two tools may send the same one. Tool ids hold no `:`,
 * so the key is unambiguous.
 *
 * @example
 * idempotencyKey(DEFAULT_KEYS, 'gh-main', 'msg_0001') // "webhook:idempotency:gh-main:msg_0001"
 */
export function idempotencyKey(keys: StreamKeys, toolId: string, eventId: string): string {
  return `${keys.idempotencyPrefix}${toolId}:${eventId}`
}

/** Where one delivery is recorded in the "delivery seen" set (see `deliverySeen`). */
export interface DeliverySeen {
  /**
   * The hashes the delivery is looked up in, newest first: its shard's hash of the current quarter-window
   * (`<deliveryPrefix><slot>:<shard>`, where a first delivery is written) and of the four before it, so a
   * delivery is remembered for at least one window.
   */
  readonly buckets: readonly [string, string, string, string, string]
  /** The delivery's field in those hashes: 12 bytes of SHA-256 over `<tool id>:<delivery id>`. */
  readonly field: Buffer
  /** When the current hash expires (Unix seconds): once the last lookup that reads it is over. */
  readonly expireAtSeconds: number
}

/** How many hashes one quarter-window of the "delivery seen" set is spread over at level 0. */
export const DELIVERY_SEEN_SHARDS = 4096

/** The highest level of a quarter-window: 4,096 × 2^8 = 1,048,576 hashes. */
export const DELIVERY_SEEN_MAX_LEVEL = 8

/** The quarter-window `nowMs` falls in, for a window of `windowSeconds`. */
export function deliverySeenSlot(windowSeconds: number, nowMs = Date.now()): number {
  return Math.floor((nowMs / 1000) * 4 / windowSeconds)
}

/** The key holding the level (how many hashes, see `deliverySeen`) of one quarter-window: `<deliveryPrefix><slot>:level`. */
export function deliverySeenLevelKey(keys: StreamKeys, slot: number): string {
  return `${keys.deliveryPrefix}${slot}:level`
}

/** When the hashes of quarter-window `slot` expire (Unix seconds): once the last lookup that reads them is over. */
export function deliverySeenExpireAt(windowSeconds: number, slot: number): number {
  return Math.ceil((slot + 5) * windowSeconds / 4)
}

/**
 * Where ingest (and `createProducer`) record that a delivery was seen. Deliveries are not one key each but
 * fields of hashes: one hash per quarter of `windowSeconds` (WORKER_IDEMPOTENCY_TTL) and shard, field = 12 bytes of
 * SHA-256 over `<tool id>:<delivery id>`, value = a short hash of the first body. A delivery is looked up in its
 * shard's hashes of the current quarter and the four before, so it is remembered for one window to one and a
 * quarter; each hash expires when no lookup reads it any more.
 *
 * A quarter-window of level L has 4,096 × 2^L shards (`levels`, newest first, one per bucket; 0 when not given,
 * which is the layout of the versions before levels; a RangeError when out of 0–8). `DeliverySeenLevels` picks
 * each quarter's level from the one before, so a hash holds at most a few hundred deliveries whatever the rate:
 * Redis keeps such a hash as a listpack, ~25–30 bytes per delivery, where a hash past
 * `hash-max-listpack-entries` (512) costs ~72–84. A window that is not a whole number of seconds ≥ 1 is a RangeError.
 *
 * @example
 * deliverySeen(DEFAULT_KEYS, 'gh-main', 'msg_0001', 86400).buckets[0] // "webhook:delivery:81679:1234"
 */
export function deliverySeen(keys: StreamKeys, toolId: string, deliveryId: string, windowSeconds: number, nowMs = Date.now(),
  levels: readonly number[] = NO_LEVELS): DeliverySeen {
  checkDeliverySeenWindow('deliverySeen', windowSeconds)
  if (levels.length > 5 || !levels.every((l) => Number.isInteger(l) && l >= 0 && l <= DELIVERY_SEEN_MAX_LEVEL)) {
    throw new RangeError(`deliverySeen: "levels" must be up to 5 integers from 0 to ${DELIVERY_SEEN_MAX_LEVEL}, newest quarter ` +
      `first (as DeliverySeenLevels.of gives them; a missing one is 0); got ${JSON.stringify(levels).slice(0, 80)}`)
  }
  const digest = createHash('sha256').update(`${toolId}:${deliveryId}`).digest()
  // level 0 is bytes 0–1 as before levels; a higher level adds bits of bytes 14–15, which the field does not use
  const base = digest.readUInt16BE(0) % DELIVERY_SEEN_SHARDS
  const high = digest.readUInt16BE(14)
  const slot = deliverySeenSlot(windowSeconds, nowMs)
  const bucket = (back: number) => {
    const level = levels[back] ?? 0
    return `${keys.deliveryPrefix}${slot - back}:${base + DELIVERY_SEEN_SHARDS * (high % (1 << level))}`
  }
  return {
    buckets: [bucket(0), bucket(1), bucket(2), bucket(3), bucket(4)],
    field: digest.subarray(2, 14),
    expireAtSeconds: deliverySeenExpireAt(windowSeconds, slot),
  }
}
const NO_LEVELS: readonly number[] = Object.freeze([0, 0, 0, 0, 0])

/**
 * Throws a RangeError naming `where` unless `windowSeconds`, the "delivery seen" window (WORKER_IDEMPOTENCY_TTL in
 * seconds), is a whole number of seconds of at least 1: any other value would put every delivery in a key like
 * `…:NaN:…` or `…:Infinity:…`.
 *
 * @example
 * checkDeliverySeenWindow('createProducer', 86400) // ok; 0, 1.5 or NaN throw
 */
export function checkDeliverySeenWindow(where: string, windowSeconds: number): void {
  if (!Number.isSafeInteger(windowSeconds) || windowSeconds < 1) {
    throw new RangeError(`${where}: the "delivery seen" window must be a whole number of seconds of at least 1 ` +
      `(WORKER_IDEMPOTENCY_TTL); got ${String(windowSeconds)}`)
  }
}

/**
 * The key of the lease that lets one process at a time trim `stream` (`<stream>:trim-lease`). A partition's stream
 * name carries its hash tag (`webhook_events:{3}`), so its lease lives in the partition's slot on a Cluster.
 *
 * @example
 * trimLeaseKey('webhook_events:{3}') // "webhook_events:{3}:trim-lease"
 */
export function trimLeaseKey(stream: string): string {
  return `${stream}:trim-lease`
}

/**
 * The key of a replay's progress record: `hookstream:replay:<id>`.
 *
 * @example
 * replayKey('rpl_0f…') // "hookstream:replay:rpl_0f…"
 */
export function replayKey(id: string): string {
  return `hookstream:replay:${id}`
}

/**
 * The "fanned out" marker of one event (`<fanoutPrefix><tool id>:<event id>`): set in the same script that
 * writes the event's deliveries, so a redelivered event never enqueues them twice.
 *
 * @example
 * fanoutKey(DEFAULT_KEYS, 'gh-main', 'msg_0001') // "webhook:fanout:gh-main:msg_0001"
 */
export function fanoutKey(keys: StreamKeys, toolId: string, eventId: string): string {
  return `${keys.fanoutPrefix}${toolId}:${eventId}`
}

/**
 * The idempotency key of one (event, destination) delivery: `<deliveredPrefix><destination id>:<tool id>:<event id>`.
 * Destination and tool ids hold no `:`, so the key is unambiguous.
 *
 * @example
 * deliveredKey(DEFAULT_KEYS, 'billing', 'gh-main', 'msg_0001') // "webhook:delivered:billing:gh-main:msg_0001"
 */
export function deliveredKey(keys: StreamKeys, destinationId: string, toolId: string, eventId: string): string {
  return `${keys.deliveredPrefix}${destinationId}:${toolId}:${eventId}`
}

/**
 * When a destination with `auto_disable_after` started failing (ms since epoch; deleted on its next success):
 * `<breakerStates>:failing-since:<tool id>:<destination id>`.
 *
 * @example
 * failingSinceKey(DEFAULT_KEYS, 'gh-main', 'ci') // "webhook:breakers:failing-since:gh-main:ci"
 */
export function failingSinceKey(keys: StreamKeys, toolId: string, destinationId: string): string {
  return `${keys.breakerStates}:failing-since:${toolId}:${destinationId}`
}
