import type { Cluster, Redis } from 'ioredis'
import type { Config } from '../config/load-config.js'
import { ConfigError } from '../core/errors.js'
import type { Logger } from '../observability/logger.js'
import type { StreamKeys } from '../sources/keys.js'
import { PartitionedStreamClient, StreamPartitions } from '../sources/partitions.js'
import { readRedisDurability, type RedisDurability } from '../sources/redis-durability.js'
import { StreamClient } from '../sources/stream-client.js'

/** What a Redis that keeps no append-only file can lose, by its persistence mode (logged, and shown by health). */
export const DURABILITY_LOSS: Record<Exclude<RedisDurability['mode'], 'aof'>, string> = {
  none: 'Redis keeps nothing on disk (appendonly no, no save): a Redis restart loses every accepted event still queued, every parked retry and every idempotency marker',
  rdb: 'Redis keeps only snapshots (save, appendonly no): a Redis restart loses everything accepted since the last snapshot',
  unknown: 'Redis refused CONFIG GET, so its persistence is unknown: make sure it keeps an append-only file (appendonly yes)',
}

/**
 * What a Redis can lose of what hookstream accepted, with how to fix each (empty for an append-only file fsynced
 * every second or always, and no eviction): logged at start and shown as `/health`'s Redis
 * reasons.
 *
 * @example
 * durabilityLosses({ mode: 'aof', save: '', evicts: 'allkeys-lru' }) // ['Redis evicts any key when it is full (…']
 */
export function durabilityLosses(durability: RedisDurability): { loss: string; fix: string }[] {
  const losses = durability.mode === 'aof' ? [] : [{
    loss: DURABILITY_LOSS[durability.mode], fix: 'turn on appendonly (CONFIG SET appendonly yes, and in redis.conf)',
  }]
  if (durability.mode === 'aof' && durability.appendfsync === 'no') {
    losses.push({
      loss: 'Redis writes its append-only file but leaves flushing it to the operating system (appendfsync no): a power failure or OS crash loses the accepted events of the last ~30 s',
      fix: 'set appendfsync everysec (at most ~1 s at risk) or always',
    })
  }
  const fix = 'set maxmemory-policy noeviction (a full Redis then refuses writes and ingest answers 503, so senders retry)'
  if (durability.evicts?.startsWith('allkeys-')) {
    losses.push({
      loss: `Redis evicts any key when it is full (maxmemory-policy ${durability.evicts} with maxmemory set): a full Redis silently drops queued events, the stream itself included`,
      fix,
    })
  } else if (durability.evicts) {
    losses.push({
      loss: `Redis evicts keys with a TTL when it is full (maxmemory-policy ${durability.evicts} with maxmemory set): those are hookstream's duplicate checks (the delivery-seen window, claim and done markers), so a re-sent or redelivered event can be forwarded twice`,
      fix,
    })
  }
  return losses
}

/**
 * The first step of the service: reads what Redis keeps on disk and whether it may evict the stream, since
 * "no 202 is lost" needs Redis to keep an accepted event across its own restart and when it is full. Anything
 * but an append-only file fsynced at least every second, without eviction, is a warning, or a `ConfigError` when `required`
 * (REDIS_REQUIRE_DURABLE).
 *
 * @example
 * const durability = await checkRedisDurability(redis, config.redisRequireDurable, logger)
 */
export async function checkRedisDurability(redis: Redis | Cluster, required: boolean, logger: Logger): Promise<RedisDurability> {
  const durability = await readRedisDurability(redis)
  const losses = durabilityLosses(durability)
  if (losses.length === 0) return durability
  if (required) {
    throw new ConfigError('REDIS_REQUIRE_DURABLE', `is true, but ${losses.map((l) => `${l.loss}; ${l.fix}`).join('; and ')}; ` +
      'or unset REDIS_REQUIRE_DURABLE')
  }
  for (const { loss, fix } of losses) {
    logger.warn({ durability: durability.mode, ...(durability.evicts ? { evicts: durability.evicts } : {}) }, `${loss}; ${fix} (or REDIS_REQUIRE_DURABLE=true to refuse to start)`)
  }
  return durability
}

/** The main stream as this process sees it (what `openQueue` returns). */
export interface Queue {
  /** Every partition of the main stream (STREAM_PARTITIONS; one when it is 1). */
  readonly partitions: StreamPartitions
  /** One client for all partitions: ingest routes each event to its partition, everything else sees them as one. */
  readonly stream: StreamClient
  /** The key sets of the partitions this process's worker reads (WORKER_PARTITIONS; all of them by default). */
  readonly readKeys: readonly StreamKeys[]
}

/**
 * Opens the main stream: its partitions, one client over them, the partitions this worker reads, and the
 * consumer group (created on every partition when missing).
 *
 * @example
 * const queue = await openQueue(redis, config)
 * await queue.stream.info()
 */
export async function openQueue(redis: Redis | Cluster, config: Config): Promise<Queue> {
  const keys = config.keys
  // STREAM_PARTITIONS > 1: ingest routes each event to its partition; everything else sees all partitions as one
  const partitions = new StreamPartitions({ redis, keys, count: config.scale.partitions, key: config.scale.partitionKey })
  const stream = partitions.count > 1 ? new PartitionedStreamClient(partitions) : new StreamClient({ redis, stream: keys.stream })
  const readKeys = (config.scale.workerPartitions ?? partitions.keys.map((_, i) => i)).map((i) => partitions.keys[i] ?? keys)
  await stream.ensureGroup(keys.group)
  return { partitions, stream, readKeys }
}
