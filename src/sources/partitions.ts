import type { StreamEvent } from '../core/event.js'
import type { DeliverySeen, StreamKeys } from './keys.js'
import { compareStreamIds, StreamClient, type AddOptions, type ConsumerInfo, type GroupInfo, type RedisClient, type StreamInfo } from './stream-client.js'

/** Event fields a partition key may be built from. */
export type PartitionField = 'tenant_id' | 'repository' | 'tool_id' | 'event_type'

/** The fields of the default partition key: events of one tenant's repository share a partition. */
export const DEFAULT_PARTITION_KEY: readonly PartitionField[] = Object.freeze(['tenant_id', 'repository'])

const FIELD_NAMES: Readonly<Record<string, PartitionField>> = {
  tenant: 'tenant_id', tenant_id: 'tenant_id', repository: 'repository', repo: 'repository',
  tool: 'tool_id', tool_id: 'tool_id', event_type: 'event_type', type: 'event_type',
}

/**
 * Parses a partition key such as `"tenant,repository"` (STREAM_PARTITION_KEY) into event fields. Accepts
 * `tenant`, `repository`, `tool` and `event_type` (and their `_id` spellings). Throws a RangeError naming
 * `where` and the accepted names otherwise.
 *
 * @example
 * parsePartitionKey('tenant,repository') // ['tenant_id', 'repository']
 */
export function parsePartitionKey(text: string, where = 'partition key'): PartitionField[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (parts.length === 0) throw new RangeError(`${where} must name at least one of tenant, repository, tool, event_type; got "${text}"`)
  return parts.map((p) => {
    const field = FIELD_NAMES[p.toLowerCase()]
    if (!field) throw new RangeError(`${where} names unknown field "${p}"; use a comma-separated list of tenant, repository, tool, event_type`)
    return field
  })
}

/**
 * 32-bit FNV-1a over the UTF-8 bytes of `text`: stable across processes, versions and restarts (unlike
 * `Math.random` or a per-process seed), so every ingest process picks the same partition for a key.
 *
 * @example
 * fnv1a32('acme/api') // the same number on every machine
 */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash >>> 0
}

/**
 * The partition (0 … count-1) of an event: the FNV-1a hash of its key fields (joined by NUL), modulo `count`.
 *
 * @example
 * partitionFor(event, 8) // same tenant and repository → same partition
 */
export function partitionFor(event: Pick<StreamEvent, PartitionField>, count: number,
  key: readonly PartitionField[] = DEFAULT_PARTITION_KEY): number {
  if (count <= 1) return 0
  return fnv1a32(key.map((f) => String(event[f] ?? '')).join('\u0000')) % count
}

/**
 * The key set of partition `index` of `count`. With one partition it is `keys` unchanged (stream
 * `webhook_events`, as before partitioning). With more, the stream, idempotency keys, delivery-seen keys and
 * delayed-retry set of a partition all carry the hash tag `{index}` (`webhook_events:{3}`,
 * `webhook:idempotency:{3}:<id>`), so on a Redis Cluster they share one slot: one pipeline or script per
 * partition works, and the partitions spread over the masters. The DLQ stream and the group name are shared.
 *
 * @example
 * partitionKeys(DEFAULT_KEYS, 3, 8).stream // "webhook_events:{3}"
 */
export function partitionKeys(keys: StreamKeys, index: number, count: number): StreamKeys {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`partitionKeys: "count" must be an integer of at least 1; got ${count}`)
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`partitionKeys: "index" must be an integer from 0 to ${count - 1}; got ${index}`)
  }
  if (count === 1) return keys
  const tag = `{${index}}`
  return Object.freeze({
    ...keys,
    stream: `${keys.stream}:${tag}`,
    idempotencyPrefix: `${keys.idempotencyPrefix}${tag}:`,
    delayed: `${keys.delayed}:${tag}`,
    deliveryPrefix: `${keys.deliveryPrefix}${tag}:`,
    deliveryStream: `${keys.deliveryStream}:${tag}`,
    fanoutPrefix: `${keys.fanoutPrefix}${tag}:`,
    deliveredPrefix: `${keys.deliveredPrefix}${tag}:`,
  })
}

/** Options of `StreamPartitions`. */
export interface StreamPartitionsOptions {
  /** A `Redis` or `Cluster` client. */
  readonly redis: RedisClient
  /** Base key set; partition names derive from it. */
  readonly keys: StreamKeys
  /** Number of partitions (STREAM_PARTITIONS). @defaultValue 1 */
  readonly count?: number
  /** Fields that pick the partition (STREAM_PARTITION_KEY). @defaultValue DEFAULT_PARTITION_KEY */
  readonly key?: readonly PartitionField[]
}

/**
 * The partitions of the main stream: each one's key set and stream client, and which one an event goes to.
 * Ingest routes each event with `route`; workers read every partition (or a subset) from `keys`.
 *
 * @example
 * const partitions = new StreamPartitions({ redis, keys: DEFAULT_KEYS, count: 8 })
 * const { stream, keys } = partitions.route(event) // stream.stream === "webhook_events:{5}"
 */
export class StreamPartitions {
  readonly count: number
  readonly key: readonly PartitionField[]
  /** The key set the partitions derive from. */
  readonly base: StreamKeys
  /** Key set per partition, by index. */
  readonly keys: readonly StreamKeys[]
  /** Stream client per partition, by index. */
  readonly streams: readonly StreamClient[]

  constructor(options: StreamPartitionsOptions) {
    const count = options.count ?? 1
    if (!Number.isInteger(count) || count < 1 || count > 16_384) {
      throw new RangeError(`StreamPartitions: "count" must be an integer from 1 to 16384; got ${count}`)
    }
    this.count = count
    this.base = options.keys
    this.key = Object.freeze([...(options.key ?? DEFAULT_PARTITION_KEY)])
    if (this.key.length === 0) throw new RangeError('StreamPartitions: "key" must name at least one event field')
    this.keys = Object.freeze(Array.from({ length: count }, (_, i) => partitionKeys(options.keys, i, count)))
    this.streams = Object.freeze(this.keys.map((k) => new StreamClient({ redis: options.redis, stream: k.stream })))
  }

  /** The partition of an event. */
  indexOf(event: Pick<StreamEvent, PartitionField>): number {
    return partitionFor(event, this.count, this.key)
  }

  /** The key set and stream client an event is written to. */
  route(event: Pick<StreamEvent, PartitionField>): { readonly keys: StreamKeys; readonly stream: StreamClient } {
    const i = this.indexOf(event)
    return { keys: this.keys[i] as StreamKeys, stream: this.streams[i] as StreamClient }
  }
}

/**
 * A `StreamClient` over every partition, for code written against one stream (DLQ re-queue, admin, health,
 * queue gauges): `add`/`addMany` route each event to its partition (one pipeline per partition, so one slot
 * each on a Cluster), `ensureGroup` and `trimSafe` run on every partition, and `info` sums them (length,
 * pending and lag per group; consumers of all partitions). `ack` is refused: entry ids belong to one partition.
 *
 * @example
 * const stream = new PartitionedStreamClient(new StreamPartitions({ redis, keys, count: 8 }))
 * await stream.addMany(events) // each to its own partition
 */
export class PartitionedStreamClient extends StreamClient {
  constructor(readonly partitions: StreamPartitions) {
    super({ redis: (partitions.streams[0] as StreamClient).redis, stream: partitions.base.stream })
  }

  override async add(event: StreamEvent, options: AddOptions = {}): Promise<string> {
    return this.partitions.route(event).stream.add(event, options)
  }

  override async addRaw(event: StreamEvent, rawEvent: Buffer, options: Omit<AddOptions, 'traceparent' | 'payloadJson'> = {}): Promise<string> {
    return this.partitions.route(event).stream.addRaw(event, rawEvent, options)
  }

  override async addIfFirst(seen: DeliverySeen, event: StreamEvent, options: AddOptions = {}): Promise<string | null> {
    return this.partitions.route(event).stream.addIfFirst(seen, event, options)
  }

  override async addOnce(seen: DeliverySeen, seenValue: string, event: StreamEvent, options: AddOptions = {}) {
    return this.partitions.route(event).stream.addOnce(seen, seenValue, event, options)
  }

  override async addMany(events: readonly StreamEvent[], options: Omit<AddOptions, 'traceparent' | 'payloadJson'> = {}): Promise<string[]> {
    const byPartition = new Map<number, number[]>()
    events.forEach((event, i) => {
      const p = this.partitions.indexOf(event)
      byPartition.set(p, [...(byPartition.get(p) ?? []), i])
    })
    const ids: string[] = new Array<string>(events.length)
    await Promise.all([...byPartition].map(async ([p, indexes]) => {
      const added = await (this.partitions.streams[p] as StreamClient).addMany(indexes.map((i) => events[i] as StreamEvent), options)
      indexes.forEach((i, k) => { ids[i] = added[k] as string })
    }))
    return ids
  }

  override async ensureGroup(group: string, startId = '0'): Promise<boolean> {
    const created = await Promise.all(this.partitions.streams.map((s) => s.ensureGroup(group, startId)))
    return created.some(Boolean)
  }

  override async ack(): Promise<number> {
    throw new RangeError(`PartitionedStreamClient: ack on the partition's own StreamClient (${this.stream}:{n}); entry ids belong to one partition`)
  }

  override async info(): Promise<StreamInfo> {
    const infos = await Promise.all(this.partitions.streams.map((s) => s.info()))
    const groups = new Map<string, { pending: number; lag: number | null; lastDeliveredId: string; consumers: ConsumerInfo[] }>()
    for (const info of infos) {
      for (const g of info.groups) {
        const sum = groups.get(g.name) ?? { pending: 0, lag: 0, lastDeliveredId: g.lastDeliveredId, consumers: [] }
        sum.pending += g.pending
        sum.lag = sum.lag === null || g.lag === null ? null : sum.lag + g.lag
        if (compareStreamIds(g.lastDeliveredId, sum.lastDeliveredId) > 0) sum.lastDeliveredId = g.lastDeliveredId
        sum.consumers.push(...g.consumers)
        groups.set(g.name, sum)
      }
    }
    const ids = (pick: (i: StreamInfo) => string | null) => infos.map(pick).filter((id): id is string => id !== null).sort(compareStreamIds)
    return {
      stream: this.stream,
      length: infos.reduce((n, i) => n + i.length, 0),
      firstId: ids((i) => i.firstId)[0] ?? null,
      lastId: ids((i) => i.lastId).at(-1) ?? null,
      groups: [...groups].map(([name, g]): GroupInfo => ({ name, ...g })),
    }
  }

  override async trimMaxLen(maxLen: number): Promise<number> {
    const removed = await Promise.all(this.partitions.streams.map((s) => s.trimMaxLen(Math.max(1, Math.ceil(maxLen / this.partitions.count)))))
    return removed.reduce((a, b) => a + b, 0)
  }

  override async trimSafe(options: { keep?: number } = {}): Promise<number> {
    const keep = options.keep === undefined ? {} : { keep: Math.ceil(options.keep / this.partitions.count) }
    const removed = await Promise.all(this.partitions.streams.map((s) => s.trimSafe(keep)))
    return removed.reduce((a, b) => a + b, 0)
  }
}

/**
 * The client of the main stream for code that writes or inspects it as a whole: a `PartitionedStreamClient`
 * when `count` > 1, otherwise a plain `StreamClient` on `keys.stream` (today's single stream).
 *
 * @example
 * const stream = mainStreamClient({ redis, keys: config.keys, count: config.scale.partitions, key: config.scale.partitionKey })
 */
export function mainStreamClient(options: StreamPartitionsOptions): StreamClient {
  const partitions = new StreamPartitions(options)
  return partitions.count > 1 ? new PartitionedStreamClient(partitions) : new StreamClient({ redis: options.redis, stream: options.keys.stream })
}
