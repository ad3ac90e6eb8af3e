import { isPipelineError, PipelineError } from '../core/errors.js'
import { DlqStore } from '../db/dlq-store.js'
import { recentActivity } from '../db/recent-activity.js'
import type { AdminOptions } from './admin.js'
import { guarded } from './admin-http.js'
import { sendJson, type Route } from './server.js'

/** The rates' window, in seconds. */
const WINDOW_SECONDS = 60

/**
 * `GET /admin/overview`: the numbers on the console's first page, in one answer. `queue`: the main stream's
 * length (`depth`), the consumer group's `lag` (entries not yet read) and `pending` (read, not yet acked), and
 * the age of the oldest pending entry in seconds over every partition; `dlq`: rows per status; `rates`: events
 * stored and dead-lettered per second over the last 60 s. Redis or PostgreSQL down is 503 with Retry-After.
 *
 * @example
 * createRouter(overviewRoutes(options)) // GET /admin/overview → { queue, dlq, rates, generated_at }
 */
export function overviewRoutes(options: AdminOptions): Route[] {
  const { db, redis, keys } = options
  const dlq = new DlqStore({ db, stream: options.stream })
  const partitions = options.partitionKeys ?? [keys]

  const oldestPendingAgeSeconds = async (): Promise<number> => {
    let oldestMs = Infinity
    for (const partKeys of partitions) {
      // XPENDING's summary: [count, smallest id, greatest id, consumers]; ids start with their ms timestamp
      const summary = (await redis.call('XPENDING', partKeys.stream, keys.group).catch((err: Error) => {
        if (/NOGROUP|no such key/i.test(err.message)) return [0, null]
        throw err
      })) as [number, string | null]
      if (summary[1]) oldestMs = Math.min(oldestMs, Number(summary[1].split('-')[0]))
    }
    return oldestMs === Infinity ? 0 : Math.max(0, (Date.now() - oldestMs) / 1000)
  }

  const fromRedis = <T>(read: Promise<T>): Promise<T> => read.catch((err: unknown) => {
    throw isPipelineError(err) ? err : new PipelineError('infrastructure', 'REDIS_UNAVAILABLE',
      `Redis did not answer while reading the queue for the overview: ${(err as Error).message}; check REDIS_URL and the server`, { cause: err })
  })

  const overview = guarded(async (_req, res) => {
    const [info, oldest, counts, recent] = await Promise.all([
      fromRedis(options.stream.info()), fromRedis(oldestPendingAgeSeconds()), dlq.countByStatus(), recentActivity(db, { windowSeconds: WINDOW_SECONDS })])
    const group = info.groups.find((g) => g.name === keys.group)
    sendJson(res, 200, {
      queue: { stream: info.stream, group: keys.group, depth: info.length, lag: group ? group.lag : 0, pending: group?.pending ?? 0,
        oldest_pending_age_seconds: Math.round(oldest * 10) / 10, consumers: group?.consumers.length ?? 0 },
      dlq: { ...counts, open: counts.pending + counts.retrying + counts.failed },
      rates: { window_seconds: recent.windowSeconds, stored_per_second: recent.stored / recent.windowSeconds,
        dead_lettered_per_second: recent.deadLettered / recent.windowSeconds },
      generated_at: new Date().toISOString(),
    })
  }, options.logger)
  return [{ method: 'GET', path: '/admin/overview', handler: overview }]
}
