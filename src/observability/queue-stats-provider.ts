import type { Redis } from 'ioredis'
import type { QueueStats } from './metrics.js'

/** A stream as `queueStatsProvider` reads it (a `StreamClient` fits). */
export interface StatsStream {
  readonly redis: Pick<Redis, 'pipeline'>
  readonly stream: string
}

/** Options of `queueStatsProvider`. */
export interface QueueStatsProviderOptions {
  /**
   * The event stream (`new StreamClient({ redis, stream: keys.stream })`), or every partition's stream when
   * STREAM_PARTITIONS > 1 (`partitions.streams`): depth and lag are summed over them, the oldest pending age is
   * the oldest of any.
   */
  readonly stream: StatsStream | readonly StatsStream[]
  /** The consumer group (`keys.group`). */
  readonly group: string
  /**
   * DLQ entries pending or retrying, e.g. a count over table `webhook_dlq`. @defaultValue XLEN of `dlqStream`
   * when given, else 0
   */
  readonly dlqDepth?: () => Promise<number>
  /** The DLQ stream name (`keys.dlqStream`), read with XLEN when `dlqDepth` is not given. */
  readonly dlqStream?: string
}

const pairs = (list: unknown): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  if (Array.isArray(list)) for (let i = 0; i + 1 < list.length; i += 2) out[String(list[i])] = list[i + 1]
  return out
}

const msOfId = (id: unknown) => (typeof id === 'string' ? Number(id.split('-')[0]) : NaN)

/**
 * The provider for `metrics.setQueueStats`: one Redis round trip per stream (XINFO GROUPS, XLEN, XPENDING
 * summary; XLEN of the DLQ stream once) per scrape (metrics caches it ~1 s). `depth` is the group's lag plus its pending
 * entries; when Redis cannot tell the lag (after a trim or XDEL) it reads as the stream length, an upper bound.
 * `oldestPendingAgeSeconds` is the age of the oldest delivered-but-unacked entry, from its id's timestamp.
 * A missing stream reads as all zeros; a missing group as the whole stream waiting.
 *
 * @example
 * metrics.setQueueStats(queueStatsProvider({ stream: new StreamClient({ redis, stream: keys.stream }), group: keys.group,
 *   dlqDepth: async () => Number((await db.selectFrom('webhook_dlq').where('status', 'in', ['pending', 'retrying'])
 *     .select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n) }))
 */
export function queueStatsProvider(options: QueueStatsProviderOptions): () => Promise<QueueStats> {
  const { group } = options
  if (!group) throw new RangeError('queueStatsProvider: "group" must be a non-empty consumer group name')
  const streams: readonly StatsStream[] = Array.isArray(options.stream) ? options.stream : [options.stream as StatsStream]
  if (streams.length === 0) throw new RangeError('queueStatsProvider: "stream" must name at least one stream')
  return async () => {
    const [dlqDepth, ...parts] = await Promise.all([dlqDepthOf(options), ...streams.map((s) => streamStats(s, group))])
    return {
      depth: parts.reduce((n, p) => n + p.depth, 0),
      lag: parts.reduce((n, p) => n + p.lag, 0),
      oldestPendingAgeSeconds: Math.max(0, ...parts.map((p) => p.oldestPendingAgeSeconds)),
      dlqDepth,
    }
  }
}

async function dlqDepthOf(options: QueueStatsProviderOptions): Promise<number> {
  if (options.dlqDepth) return options.dlqDepth()
  if (!options.dlqStream) return 0
  const first = Array.isArray(options.stream) ? options.stream[0] : options.stream
  return Number(await (first as StatsStream).redis.pipeline().call('XLEN', options.dlqStream).exec().then((r) => r?.[0]?.[1] ?? 0))
}

// one stream (one partition): one round trip
async function streamStats({ redis, stream }: StatsStream, group: string): Promise<Omit<QueueStats, 'dlqDepth'>> {
  const pipe = redis.pipeline()
  pipe.call('XINFO', 'GROUPS', stream)
  pipe.call('XLEN', stream)
  pipe.call('XPENDING', stream, group)
  const [groupsR, lenR, pendingR] = (await pipe.exec()) ?? []
  const length = Number(lenR?.[1] ?? 0)
  // a missing stream answers XINFO with an error: nothing is queued then
  if (groupsR?.[0]) return { depth: 0, lag: 0, oldestPendingAgeSeconds: 0 }
  const info = (groupsR?.[1] as unknown[]).map(pairs).find((g) => String(g.name) === group)
  // no group yet (XPENDING answered NOGROUP): everything in the stream is waiting for it
  if (!info || pendingR?.[0]) return { depth: length, lag: length, oldestPendingAgeSeconds: 0 }
  const pending = Number(info.pending ?? 0)
  const lag = info.lag === null || info.lag === undefined ? length : Number(info.lag)
  const oldest = msOfId((pendingR?.[1] as unknown[] | undefined)?.[1])
  const oldestPendingAgeSeconds = pending > 0 && Number.isFinite(oldest) ? Math.max(0, (Date.now() - oldest) / 1000) : 0
  return { depth: lag + pending, lag, oldestPendingAgeSeconds }
}
