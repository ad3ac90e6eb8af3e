import { parseDuration } from '../core/duration.js'
import { DEFAULT_DLQ_POLICY, type DlqPolicy } from '../core/dlq-policy.js'
import { type ConfigSources, duration, integer, invalid, text, type RawSetting } from './config-sources.js'

/** Settings the seed service reads that hookstream took over: the processing time limit, DLQ limits, Redis options. */
export interface SeedSettings {
  /** Longest one store batch, forward attempt or user step may take (WORKER_PROCESSING_TIMEOUT), in ms. */
  readonly processingTimeoutMs: number
  readonly dlq: {
    /** Approximate cap on the DLQ stream (DLQ_MAX_LEN). */
    readonly maxLen: number
    /** How long resolved/discarded rows and DLQ stream entries are kept (DLQ_RETENTION), in ms. */
    readonly retentionMs: number
    /** Re-queue schedule and rounds (DLQ_RETRY_SCHEDULE, DLQ_MAX_ROUNDS). */
    readonly policy: DlqPolicy
  }
  /** The command log the command workers read (COMMANDS_STREAM; its DLQ is `<stream>:dlq`). */
  readonly commandStream: string
  /** Redis connection options beside the URL (REDIS_TLS_ENABLED, REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB); they beat the URL's. */
  readonly redisOptions: {
    readonly tls: boolean
    readonly username?: string
    readonly password?: string
    readonly db?: number
  }
}

const MAX_TIMER_MS = 2_147_483_647
const MAX_RETENTION_MS = 36_500 * 86_400_000

function boolean(raw: RawSetting): boolean {
  const value = String(raw.value).toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(value)) return true
  if (['false', '0', 'no', 'off'].includes(value)) return false
  return invalid(raw, 'true or false')
}

function schedule(raw: RawSetting): number[] {
  const expected = 'a comma-separated list of 1–20 durations of at least 1s such as "1m,10m,1h"'
  const parts = text(raw, undefined, expected).split(',').map((p) => p.trim())
  if (parts.length < 1 || parts.length > 20) invalid(raw, expected)
  return parts.map((p) => {
    const ms = parseDuration(p)
    return ms === undefined || ms < 1000 || ms > MAX_TIMER_MS * 100 ? invalid(raw, expected) : ms
  })
}

/**
 * Reads the seed service's settings from flags, env and file: WORKER_PROCESSING_TIMEOUT (default 5m),
 * DLQ_MAX_LEN (100000), DLQ_RETENTION (168h), DLQ_RETRY_SCHEDULE (1m,10m,1h), DLQ_MAX_ROUNDS (3),
 * REDIS_TLS_ENABLED (false), REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB. Bad values throw a ConfigError naming the key.
 *
 * @example
 * seedSettings(new ConfigSources(process.env, {}, undefined)).dlq.policy.maxRounds // 3
 */
export function seedSettings(src: ConfigSources): SeedSettings {
  const opt = <T>(env: string, file: string, parse: (raw: RawSetting) => T, secret = false): T | undefined => {
    const raw = src.pick({ env, file, secret })
    return raw ? parse(raw) : undefined
  }
  const processingTimeoutMs = opt('WORKER_PROCESSING_TIMEOUT', 'worker.processing.processing_timeout', (r) => {
    const ms = duration(r, 1)
    // the 24d the message states (and the other timer settings keep to), below setTimeout's 2^31-1 ms
    return ms > 24 * 86_400_000 ? invalid(r, 'a duration up to 24d such as "5m" or "30s"') : ms
  }) ?? 300_000
  const username = opt('REDIS_USERNAME', 'worker.redis.username', (r) => text(r))
  const password = opt('REDIS_PASSWORD', 'worker.redis.password', (r) => text(r), true)
  const db = opt('REDIS_DB', 'worker.redis.db', (r) => integer(r, 0, 9999))
  return {
    processingTimeoutMs,
    commandStream: opt('COMMANDS_STREAM', 'commands.stream', (r) => text(r, /^[^\s]{1,200}$/, 'a stream name of 1–200 characters without spaces')) ?? 'commands',
    dlq: {
      maxLen: opt('DLQ_MAX_LEN', 'worker.dlq.max_len', (r) => integer(r, 1, 1_000_000_000)) ?? 100_000,
      // the purge deletes rows older than now minus this: past ~6,700 years that cutoff is before PostgreSQL's
      // first timestamp, and every purge (and the DLQ stream trims after it) fails
      retentionMs: opt('DLQ_RETENTION', 'worker.dlq.retention', (r) => {
        const ms = parseDuration(typeof r.value === 'number' ? r.value : String(r.value))
        return ms === undefined || ms < 60_000 || ms > MAX_RETENTION_MS
          ? invalid(r, 'a duration from 1m to 36500d (100 years) such as "168h" or "30d"') : ms
      }) ?? 168 * 3_600_000,
      policy: {
        delaysMs: opt('DLQ_RETRY_SCHEDULE', 'worker.dlq.retry_schedule', schedule) ?? DEFAULT_DLQ_POLICY.delaysMs,
        maxRounds: opt('DLQ_MAX_ROUNDS', 'worker.dlq.max_rounds', (r) => integer(r, 0, 100)) ?? DEFAULT_DLQ_POLICY.maxRounds,
      },
    },
    redisOptions: {
      tls: opt('REDIS_TLS_ENABLED', 'worker.redis.tls_enabled', boolean) ?? false,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(db !== undefined ? { db } : {}),
    },
  }
}
