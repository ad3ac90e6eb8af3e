import { parseDuration } from '../core/duration.js'
import { ConfigError } from '../core/errors.js'
import type { ConfigFile } from './config-file.js'
import { parseSize } from '../core/size.js'

/** Where one setting can be given: a CLI flag (without `--`), an environment variable, a config file path. */
export interface SettingSource {
  readonly flag?: string
  readonly env?: string
  readonly file?: string
  /** The value is a secret (or may hold one, like a URL with a password): error messages never show it. */
  readonly secret?: boolean
}

/** One value as found, with the name of the place it came from (for error messages). */
export interface RawSetting {
  readonly value: unknown
  /** `--redis-url`, `REDIS_URL` or `hookstream.yaml: worker.redis.url`. */
  readonly where: string
  readonly secret: boolean
}

/** One source of configuration; `flag` beats `env` beats `file`. */
export type Layer = 'flag' | 'env' | 'file'

/**
 * The three layers of configuration, read in precedence order: flags, then environment, then file. Empty
 * strings count as unset, so `REDIS_URL=` does not hide the file's value.
 *
 * @example
 * const sources = new ConfigSources(process.env, flags, file)
 * sources.pick({ flag: 'log-level', env: 'LOG_LEVEL', file: 'log.level' })
 */
export class ConfigSources {
  constructor(
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly flags: Readonly<Record<string, string | boolean | undefined>>,
    private readonly file: ConfigFile | undefined,
  ) {}

  /** The value of `source` from one layer, or `undefined` when that layer does not set it. */
  layer(layer: Layer, source: SettingSource): RawSetting | undefined {
    const secret = source.secret ?? false
    if (layer === 'flag' && source.flag !== undefined) {
      const value = this.flags[source.flag]
      if (value === true) throw new ConfigError(`--${source.flag}`, 'needs a value, e.g. --' + source.flag + '=<value>')
      if (typeof value === 'string' && value.trim() !== '') return { value: value.trim(), where: `--${source.flag}`, secret }
    }
    if (layer === 'env' && source.env !== undefined) {
      const value = this.env[source.env]
      if (value !== undefined && value.trim() !== '') return { value: value.trim(), where: source.env, secret }
    }
    if (layer === 'file' && source.file !== undefined && this.file) {
      const value = this.file.values.get(source.file)
      if (value !== undefined && value !== '') return { value, where: `${this.file.path}: ${this.file.writtenAs.get(source.file) ?? source.file}`, secret }
    }
    return undefined
  }

  /** The value of `source` from the first layer that sets it (flags > env > file). */
  pick(source: SettingSource): RawSetting | undefined {
    return this.layer('flag', source) ?? this.layer('env', source) ?? this.layer('file', source)
  }
}

function shown(raw: RawSetting): string {
  return raw.secret ? '(value hidden)' : JSON.stringify(String(raw.value))
}

/**
 * Throws the ConfigError for `raw` with what was expected; a secret value is not repeated.
 *
 * @example
 * invalid(raw, 'at least 16 characters') // ADMIN_TOKEN must be at least 16 characters; got (value hidden)
 */
export function invalid(raw: RawSetting, expected: string): never {
  throw new ConfigError(raw.where, `must be ${expected}; got ${shown(raw)}`)
}

/**
 * A string setting, optionally checked against `pattern` (described by `expected`).
 *
 * @example
 * text(raw, /^[a-z]+$/, 'lowercase letters')
 */
export function text(raw: RawSetting, pattern?: RegExp, expected = 'a string'): string {
  if (typeof raw.value !== 'string' && typeof raw.value !== 'number') invalid(raw, expected)
  const value = String(raw.value)
  if (pattern && !pattern.test(value)) invalid(raw, expected)
  return value
}

/**
 * A duration setting (`"5s"`, `"24h"`, `"1h30m"`), in milliseconds, at least `minMs`.
 *
 * @example
 * duration({ value: '90m', where: 'WORKER_IDEMPOTENCY_TTL', secret: false }) // 5400000
 */
export function duration(raw: RawSetting, minMs = 1): number {
  const ms = typeof raw.value === 'string' || typeof raw.value === 'number' ? parseDuration(raw.value) : undefined
  if (ms === undefined || ms < minMs) invalid(raw, 'a duration such as "24h" or "90m"')
  return ms
}

/**
 * An integer setting within `[min, max]`.
 *
 * @example
 * integer({ value: '100', where: 'WORKER_BATCH_SIZE', secret: false }, 1, 10_000) // 100
 */
export function integer(raw: RawSetting, min: number, max: number): number {
  const n = typeof raw.value === 'number' ? raw.value : typeof raw.value === 'string' && /^\d+$/.test(raw.value) ? Number(raw.value) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) invalid(raw, `an integer from ${min} to ${max}`)
  return n
}

/**
 * A byte size setting (`"10MiB"`, `"1mb"`, `1048576`), at least `min`.
 *
 * @example
 * size({ value: '1mb', where: 'INGEST_MAX_BODY', secret: false }, 1024) // 1048576
 */
export function size(raw: RawSetting, min: number): number {
  const bytes = typeof raw.value === 'string' || typeof raw.value === 'number' ? parseSize(raw.value) : undefined
  if (bytes === undefined || bytes < min) invalid(raw, `a size such as "10MiB", "512kb" or a number of bytes (at least ${min})`)
  return bytes
}

/**
 * One of `choices`, case-insensitive, returned in lowercase.
 *
 * @example
 * oneOf({ value: 'INFO', where: 'LOG_LEVEL', secret: false }, ['debug', 'info']) // "info"
 */
export function oneOf<T extends string>(raw: RawSetting, choices: readonly T[]): T {
  const value = typeof raw.value === 'string' ? raw.value.toLowerCase() : undefined
  if (value === undefined || !(choices as readonly string[]).includes(value)) invalid(raw, `one of ${choices.join(', ')}`)
  return value as T
}

/**
 * A URL with one of `protocols`; `example` is shown in the error.
 *
 * @example
 * url(raw, ['redis:', 'rediss:'], 'redis://localhost:6379')
 */
export function url(raw: RawSetting, protocols: readonly string[], example: string): string {
  const value = typeof raw.value === 'string' ? raw.value : ''
  if (!URL.canParse(value) || !protocols.includes(new URL(value).protocol)) invalid(raw, `a URL such as "${example}"`)
  return value
}
