import type { Redis } from 'ioredis'
import type { QueueStats } from './metrics.js'

/** A stream as `queueStatsProvider` reads it (a `StreamClient` fits). */
export interface StatsStream {
  readonly redis: Pick<Redis, 'pipeline'>
  readonly stream: string
}

/** Options of `queueStatsProvider`. */
export interface QueueStatsProviderOptions {
  /** The event stream (`new StreamClient({ redis, stream: keys.stream })`). */
  readonly stream: StatsStream
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
 * The provider for `metrics.setQueueStats`: one Redis round trip (XINFO GROUPS, XLEN, XPENDING summary, and
 * XLEN of the DLQ stream) per scrape (metrics caches it ~1 s). `depth` is the group's lag plus its pending
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
  const { stream: { redis, stream }, group } = options
  if (!group) throw new RangeError('queueStatsProvider: "group" must be a non-empty consumer group name')
  return async () => {
    const pipe = redis.pipeline()
    pipe.call('XINFO', 'GROUPS', stream)
    pipe.call('XLEN', stream)
    pipe.call('XPENDING', stream, group)
    if (!options.dlqDepth && options.dlqStream) pipe.call('XLEN', options.dlqStream)
    const [groupsR, lenR, pendingR, dlqR] = (await pipe.exec()) ?? []
    const dlqDepth = options.dlqDepth ? await options.dlqDepth() : Number(dlqR?.[1] ?? 0)
    const length = Number(lenR?.[1] ?? 0)
    // a missing stream answers XINFO with an error: nothing is queued then
    if (groupsR?.[0]) return { depth: 0, lag: 0, oldestPendingAgeSeconds: 0, dlqDepth }
    const info = (groupsR?.[1] as unknown[]).map(pairs).find((g) => String(g.name) === group)
    // no group yet (XPENDING answered NOGROUP): everything in the stream is waiting for it
    if (!info || pendingR?.[0]) return { depth: length, lag: length, oldestPendingAgeSeconds: 0, dlqDepth }
    const pending = Number(info.pending ?? 0)
    const lag = info.lag === null || info.lag === undefined ? length : Number(info.lag)
    const oldest = msOfId((pendingR?.[1] as unknown[] | undefined)?.[1])
    const oldestPendingAgeSeconds = pending > 0 && Number.isFinite(oldest) ? Math.max(0, (Date.now() - oldest) / 1000) : 0
    return { depth: lag + pending, lag, oldestPendingAgeSeconds, dlqDepth }
  }
}
