import { readFileSync } from 'node:fs'
import { parse, YAMLParseError } from 'yaml'
import { ConfigError } from '../core/errors.js'

/** The keys a configuration file may hold, by section (the seed service's layout). */
export const CONFIG_FILE_KEYS: Readonly<Record<string, Readonly<Record<string, readonly string[]>> | readonly string[]>> = Object.freeze({
  worker: {
    redis: ['url', 'addr', 'cluster_nodes', 'require_durable'],
    stream: ['name', 'group', 'dlq_name', 'prefix', 'batch_size', 'max_in_flight', 'block_timeout', 'claim_idle', 'max_len', 'trim_interval', 'trim_keep', 'partitions', 'partition_key', 'worker_partitions'],
    processing: ['idempotency_ttl', 'max_deliveries', 'concurrency', 'shutdown_timeout', 'consumer_name', 'order_by', 'stall_timeout'],
  },
  database: ['url', 'host', 'port', 'name', 'user', 'password', 'ssl_mode'],
  http: ['addr', 'max_body', 'max_connections', 'headers_timeout', 'request_timeout', 'rate_limit', 'rate_burst'],
  forward: ['allow_private', 'timeout', 'max_retry_after'],
  health: ['endpoint'],
  admin: ['token'],
  log: ['level'],
  otel: ['endpoint'],
})

/** A configuration file, read and checked for unknown keys. */
export interface ConfigFile {
  readonly path: string
  /** Leaf values by dotted path (`worker.stream.name`); empty (`null`) values are left out. */
  readonly values: ReadonlyMap<string, unknown>
  /** The `tools` list as written (each item is checked by `parseTool` later). */
  readonly tools: readonly unknown[]
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function walk(path: string, file: string, value: unknown, known: readonly string[] | Readonly<Record<string, unknown>>, out: Map<string, unknown>): void {
  if (value === null || value === undefined) return
  if (!isRecord(value)) throw new ConfigError(`${file}: ${path}`, 'must be a mapping of keys to values')
  const names = Array.isArray(known) ? known : Object.keys(known)
  for (const [key, child] of Object.entries(value)) {
    const at = `${path}.${key}`
    if (!names.includes(key)) {
      throw new ConfigError(`${file}: ${at}`, `is not a known key; keys of ${path} are ${names.join(', ')}`)
    }
    if (Array.isArray(known)) {
      if (child === null || child === undefined) continue
      if (typeof child === 'object') throw new ConfigError(`${file}: ${at}`, 'must be a single value, not a list or mapping')
      out.set(at, child)
    } else {
      walk(at, file, child, (known as Record<string, readonly string[]>)[key] as readonly string[], out)
    }
  }
}

/**
 * Reads a YAML configuration file. Throws a ConfigError naming `key` (where the path came from, e.g.
 * `--config`) when it cannot be read, naming the line and column when it is not YAML (without quoting it:
 * the line may hold a secret), and naming the key when it is not a known one.
 *
 * @example
 * readConfigFile('hookstream.yaml', '--config').values.get('worker.stream.name') // "webhook_events"
 */
export function readConfigFile(path: string, key: string): ConfigFile {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(key, `names the file "${path}", which cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path`)
  }
  let doc: unknown
  try {
    doc = parse(text)
  } catch (err) {
    const pos = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : ''
    throw new ConfigError(`config file ${path}`, `is not valid YAML${pos} (${err instanceof YAMLParseError ? err.code : 'parse error'}); fix the syntax there`)
  }
  const values = new Map<string, unknown>()
  if (doc === null || doc === undefined) return { path, values, tools: [] }
  if (!isRecord(doc)) throw new ConfigError(`config file ${path}`, 'must be a YAML mapping with sections such as worker:, database:, http:')
  const tools = doc.tools ?? []
  if (!Array.isArray(tools)) throw new ConfigError(`${path}: tools`, 'must be a list of tools')
  for (const [section, value] of Object.entries(doc)) {
    if (section === 'tools') continue
    const known = CONFIG_FILE_KEYS[section]
    if (!known) {
      throw new ConfigError(`${path}: ${section}`, `is not a known section; sections are ${[...Object.keys(CONFIG_FILE_KEYS), 'tools'].join(', ')}`)
    }
    walk(section, path, value, known, values)
  }
  return { path, values, tools }
}
