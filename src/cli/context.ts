import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { loadConfig, type Config } from '../config/load-config.js'
import type { Flags } from '../config/parse-flags.js'
import { createDb, type Db } from '../db/database.js'
import { migrateToLatest } from '../db/migrate.js'
import { startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js'
import type { CliIO } from './command.js'

/** What commands work with: the validated config, Redis and the database (migrated), and how to close them. */
export interface CliContext {
  readonly config: Config
  /** A `Cluster` client when REDIS_CLUSTER_NODES is set, otherwise a `Redis` client. */
  readonly redis: Redis | Cluster
  readonly db: Db
  /** Closes everything it opened (and stops an embedded Redis); idempotent. */
  close(): Promise<void>
}

/**
 * The ioredis options from REDIS_TLS_ENABLED, REDIS_USERNAME, REDIS_PASSWORD and REDIS_DB; each beats what the URL says. TLS
 * verifies the server's certificate against Node's CAs (add a private CA with NODE_EXTRA_CA_CERTS).
 *
 * @example
 * new Redis(config.redis.url, { ...redisConnectOptions(config) })
 */
export function redisConnectOptions(config: Config): RedisOptions {
  const { tls, username, password, db } = config.redisOptions
  return {
    ...(tls ? { tls: {} } : {}),
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(db !== undefined ? { db } : {}),
  }
}

/**
 * Loads the configuration (flags > env > YAML file) and opens Redis and the database. With REDIS_CLUSTER_NODES it
 * connects an ioredis `Cluster` client to those seed nodes instead of one server. With no REDIS_URL /
 * REDIS_ADDR it starts an embedded `redis-server` under `./.hookstream/redis`; with no DATABASE_URL /
 * DATABASE_HOST it opens an embedded PGlite under `./.hookstream/pgdata`. Migrations run before it returns
 * unless `migrate` is false (`hookstream migrate` applies and reports them itself).
 * Says on stderr what it started and where.
 *
 * @example
 * const ctx = await openContext(flags, io); try { … } finally { await ctx.close() }
 */
export async function openContext(flags: Flags, io: CliIO, options: { needRedis?: boolean; migrate?: boolean } = {}): Promise<CliContext> {
  const config = loadConfig({ env: io.env, flags })
  let embedded: EmbeddedRedis | undefined
  let redis: Redis | Cluster | undefined
  let db: Db | undefined
  try {
    const clusterNodes = config.scale.clusterNodes
    if (options.needRedis !== false && clusterNodes) {
      const cluster = new Cluster(clusterNodes.map((n) => {
        const at = n.lastIndexOf(':')
        return { host: n.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(n.slice(at + 1)) }
      }), { lazyConnect: true, redisOptions: { maxRetriesPerRequest: null, ...redisConnectOptions(config) } })
      redis = cluster
      cluster.on('error', () => { /* reconnects; failures surface through commands and health */ })
      await cluster.connect()
    } else if (options.needRedis !== false) {
      let url: string
      // REDIS_PASSWORD / REDIS_DB / REDIS_TLS_ENABLED are for a configured server; the embedded one has none of them
      let connectOptions = {}
      if (config.redis.kind === 'embedded') {
        embedded = await startEmbeddedRedis(config.redis.dir)
        url = embedded.url
        io.stderr(`hookstream: no REDIS_URL set; started an embedded redis-server at ${url} (data in ${embedded.dir})`)
      } else {
        url = config.redis.url
        connectOptions = redisConnectOptions(config)
      }
      const single = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true, ...connectOptions })
      redis = single
      single.on('error', () => { /* reconnects; failures surface through commands and health */ })
      await single.connect()
    }
    if (config.database.kind === 'embedded') {
      db = await createDb({ pglitePath: config.database.path })
      io.stderr(`hookstream: no DATABASE_URL set; using an embedded PostgreSQL (PGlite) in ${config.database.path}`)
    } else {
      // each step may hold a connection per batch in it, and store, fan-out, DLQ and deliveries run side by side
      db = await createDb({ url: config.database.url, poolSize: Math.max(4, Math.min(20, 8 * config.worker.concurrency)) })
    }
    if (options.migrate !== false) await migrateToLatest(db.db)
  } catch (err) {
    redis?.disconnect()
    await db?.close()
    await embedded?.stop()
    throw err
  }
  let closing: Promise<void> | undefined
  const openRedis = redis ?? new Redis({ lazyConnect: true })
  return {
    config, redis: openRedis, db,
    close: () => (closing ??= (async () => {
      await Promise.allSettled([openRedis.quit().catch(() => openRedis.disconnect()), (db as Db).close()])
      await embedded?.stop()
    })()),
  }
}
