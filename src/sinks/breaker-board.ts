import type { BreakerSnapshot, BreakerState } from './circuit-breaker.js'

/** The subset of ioredis the board uses (a `Redis` or `Cluster` client fits). */
export interface BreakerBoardRedis {
  call(command: string, ...args: (string | number)[]): Promise<unknown>
}

/** One worker's breaker of one destination, as the admin API and `hookstream breakers list` show it. */
export interface BreakerBoardEntry {
  readonly destination: string
  /** The worker process (WORKER_CONSUMER_NAME) whose breaker this is: each worker keeps its own. */
  readonly worker: string
  readonly state: BreakerState
  readonly consecutive_failures: number
  /** ISO 8601 times; null when not known. */
  readonly opened_at: string | null
  readonly next_probe_at: string | null
  readonly updated_at: string
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString())

/**
 * Publishes a worker's breaker changes to a Redis hash (`StreamKeys.breakerStates`), so the admin API and the CLI
 * of any process can show them: an open or half-open breaker is a field `<destination>@<worker>`, a closed one is
 * removed. A write never rejects (await it or not): a Redis hiccup costs a stale view, never a delivery.
 *
 * @example
 * const board = breakerBoard(redis, keys.breakerStates, 'worker-1')
 * new CircuitBreakers({ onStateChange: (d, state, snap) => board(snap) })
 */
export function breakerBoard(redis: BreakerBoardRedis, key: string, worker: string): (snapshot: BreakerSnapshot) => Promise<void> {
  return (snap) => {
    const field = `${snap.destination}@${worker}`
    const entry: BreakerBoardEntry = {
      destination: snap.destination, worker, state: snap.state, consecutive_failures: snap.consecutiveFailures,
      opened_at: iso(snap.openedAt), next_probe_at: iso(snap.nextProbeAt), updated_at: new Date().toISOString(),
    }
    const write = snap.state === 'closed' ? redis.call('HDEL', key, field) : redis.call('HSET', key, field, JSON.stringify(entry))
    return write.then(() => {}, () => {})
  }
}

/**
 * Every open or half-open breaker on the board, sorted by destination then worker (at most `limit`).
 *
 * @example
 * await readBreakerBoard(redis, keys.breakerStates) // [{ destination: 'gh-main', worker: 'w1', state: 'open', … }]
 */
export async function readBreakerBoard(redis: BreakerBoardRedis, key: string, limit = 1000): Promise<BreakerBoardEntry[]> {
  const flat = (await redis.call('HGETALL', key)) as string[]
  const entries: BreakerBoardEntry[] = []
  for (let i = 1; i < flat.length && entries.length < limit; i += 2) {
    try {
      entries.push(JSON.parse(flat[i] as string) as BreakerBoardEntry)
    } catch {
      // a value someone else wrote: not ours to show
    }
  }
  return entries.sort((a, b) => a.destination.localeCompare(b.destination) || a.worker.localeCompare(b.worker))
}
