import { sql } from 'kysely'
import type { Cluster, Redis } from 'ioredis'
import type { Db } from '../db/database.js'
import type { RedisDurability } from '../sources/redis-durability.js'
import { durabilityLosses } from './connect.js'

/**
 * The database check of `createHealth`: `select 1`, with the seed's details (`open_connections`,
 * `query_duration_ms`); `holding()` says whether the pipeline holds events because a dependency is down; each of
 * `losses` (what PostgreSQL can lose, `databaseDurabilityLosses`) is a reason, which makes the component degraded.
 *
 * @example
 * createHealth({ checkDatabase: databaseCheck(db, () => state.holds > 0), … })
 */
export function databaseCheck(db: Db, holding: () => boolean = () => false, losses: readonly string[] = []): () => Promise<Record<string, unknown>> {
  return async () => {
    const started = Date.now()
    await sql`select 1`.execute(db.db)
    const queryMs = Date.now() - started
    return {
      kind: db.kind, queryMs, holding: holding(), details: { open_connections: db.openConnections(), query_duration_ms: queryMs },
      ...(losses.length ? { reasons: [...losses] } : {}),
    }
  }
}

/**
 * The Redis check of `createHealth`: PING, with the seed's details (`ping_duration_ms`) and, when given, what
 * Redis keeps on disk (`durability`) and what it can lose (each of its `durabilityLosses` is a reason, which
 * makes the component degraded).
 *
 * @example
 * createHealth({ checkRedis: redisCheck(redis, await readRedisDurability(redis)), … })
 */
export function redisCheck(redis: Redis | Cluster, durability?: RedisDurability): () => Promise<Record<string, unknown>> {
  const losses = durability ? durabilityLosses(durability).map((l) => l.loss) : []
  return async () => {
    const started = Date.now()
    await redis.ping()
    const pingMs = Date.now() - started
    return {
      pingMs, status: redis.status, details: { ping_duration_ms: pingMs },
      ...(durability ? { durability: durability.mode } : {}),
      ...(losses.length ? { reasons: losses } : {}),
    }
  }
}
