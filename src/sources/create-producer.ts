import { completeStreamEvent, type StreamEvent, type StreamEventInput } from '../core/event.js'
import { DEFAULT_KEYS, deliverySeen, streamKeys, type DeliverySeen, type StreamKeys } from './keys.js'
import { DeliverySeenLevels } from './delivery-seen-levels.js'
import { DEFAULT_PARTITION_KEY, StreamPartitions, type PartitionField } from './partitions.js'
import type { RedisClient } from './stream-client.js'

/** Options of `createProducer`. */
export interface ProducerOptions {
  /** Your ioredis client (a `Redis` or a `Cluster`); the producer opens no connection of its own. */
  readonly redis: RedisClient
  /** Stream to write; overrides `keys.stream`. @defaultValue "webhook_events" */
  readonly stream?: string
  /** Key names (delivery-seen keys included). @defaultValue DEFAULT_KEYS */
  readonly keys?: StreamKeys
  /** Partitions of the stream (STREAM_PARTITIONS), so events land where the workers read them. @defaultValue 1 */
  readonly partitions?: number
  /** Fields that pick an event's partition (STREAM_PARTITION_KEY). @defaultValue DEFAULT_PARTITION_KEY */
  readonly partitionKey?: readonly PartitionField[]
  /** Approximate cap on the stream (XADD `MAXLEN ~`, STREAM_MAXLEN). @defaultValue unset: no cap */
  readonly maxLen?: number
  /** How long (s) a delivery id is remembered at least, so a re-send is a duplicate (WORKER_IDEMPOTENCY_TTL; see `deliverySeen`). @defaultValue 86400 */
  readonly dedupeTtlSeconds?: number
}

/** What `send` did with one event. */
export interface SendResult {
  /** The event id: yours, or the UUID the producer gave it. */
  readonly id: string
  /** The stream entry id, or `null` when the delivery id was seen before (nothing was added). */
  readonly streamId: string | null
  /** True when the (tool, id) pair was sent within the dedupe window already. */
  readonly duplicate: boolean
}

/** Sends events into hookstream's stream without HTTP. */
export interface Producer {
  /** Validates, completes and appends one event; `traceparent` (W3C) joins the worker's spans to your trace. */
  send(event: StreamEventInput, options?: { readonly traceparent?: string }): Promise<SendResult>
  /** Validates every event first (nothing is sent when one is invalid), then appends them, all sent at once. */
  sendMany(events: readonly StreamEventInput[]): Promise<SendResult[]>
}

/**
 * A producer for services that send events into hookstream without HTTP, writing exactly what ingest writes:
 * the same validation (`completeStreamEvent`: the StreamEvent shape, a delivery id of 1–200 printable
 * characters), the same stream entry (`StreamClient`) and partition, and the same "delivery seen" dedupe: an
 * event with your own `id` is added only if (tool, id) was not sent within `dedupeTtlSeconds`, by ingest or a
 * producer, in one atomic script. Without an `id` the event gets a UUID and is always added.
 *
 * @example
 * const producer = createProducer({ redis })
 * const { streamId } = await producer.send({ id: 'inv-42', event_type: 'billing.invoice.paid', tool_id: 'billing', payload })
 */
export function createProducer(options: ProducerOptions): Producer {
  if (!options.redis) throw new TypeError('createProducer: "redis" must be an ioredis client (new Redis(url))')
  const base = options.keys ?? DEFAULT_KEYS
  const keys = options.stream === undefined ? base : streamKeys({ ...base, stream: options.stream })
  const ttlSeconds = options.dedupeTtlSeconds ?? 86_400
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new RangeError(`createProducer: "dedupeTtlSeconds" must be an integer of at least 1; got ${ttlSeconds}`)
  }
  const partitions = new StreamPartitions({
    redis: options.redis, keys, count: options.partitions ?? 1, key: options.partitionKey ?? DEFAULT_PARTITION_KEY,
  })
  const maxLen = options.maxLen !== undefined ? { maxLen: options.maxLen } : {}
  const seenLevels = new DeliverySeenLevels(ttlSeconds)
  const seenAt = async (redis: RedisClient, keys: StreamKeys, event: StreamEvent) => {
    const now = Date.now()
    return deliverySeen(keys, event.tool_id, event.id, ttlSeconds, now, await seenLevels.of(redis, keys, now))
  }

  // where each event's delivery is recorded: only an event with an id of its own is deduped
  const seenOf = (event: StreamEvent, given: boolean) => {
    const route = partitions.route(event)
    return given ? seenAt(route.stream.redis, route.keys, event) : Promise.resolve(undefined)
  }
  // issues the XADD (or the dedupe script) at once, so appends started in order reach Redis in that order
  const append = async (event: StreamEvent, seen: DeliverySeen | undefined, traceparent?: string): Promise<SendResult> => {
    const route = partitions.route(event)
    const addOptions = { ...maxLen, ...(traceparent ? { traceparent } : {}) }
    const streamId = seen ? await route.stream.addIfFirst(seen, event, addOptions) : await route.stream.add(event, addOptions)
    return { id: event.id, streamId, duplicate: streamId === null }
  }

  return {
    async send(input, sendOptions = {}) {
      const event = completeStreamEvent(input, 'createProducer.send')
      return append(event, await seenOf(event, input?.id !== undefined), sendOptions.traceparent)
    },
    async sendMany(inputs) {
      const events = inputs.map((input, i) => completeStreamEvent(input, `createProducer.sendMany, event ${i}`))
      // every dedupe key first, then the appends issued in the given order, so the entries keep it. The first
      // deduped one goes alone: on a Redis that has not cached the dedupe script yet it is sent twice (EVALSHA,
      // then EVAL), and appends issued meanwhile would overtake it
      const seen = await Promise.all(events.map((event, i) => seenOf(event, inputs[i]?.id !== undefined)))
      const first = seen.findIndex((s) => s !== undefined)
      const head = first < 0 ? [] : await Promise.all(events.slice(0, first + 1).map((event, i) => append(event, seen[i])))
      return [...head, ...await Promise.all(events.slice(head.length).map((event, i) => append(event, seen[head.length + i])))]
    },
  }
}
