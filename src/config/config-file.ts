import { readFileSync } from 'node:fs'
import { parse, YAMLParseError } from 'yaml'
import { ConfigError } from '../core/errors.js'

/** The keys a configuration file may hold, by section (the seed service's layout). */
export const CONFIG_FILE_KEYS: Readonly<Record<string, Readonly<Record<string, readonly string[]>> | readonly string[]>> = Object.freeze({
  worker: {
    redis: ['url', 'addr', 'cluster_nodes', 'username', 'password', 'db', 'tls_enabled', 'require_durable'],
    stream: ['name', 'group', 'dlq_name', 'prefix', 'batch_size', 'max_in_flight', 'block_timeout', 'read_linger', 'claim_idle', 'max_len', 'trim_interval', 'trim_keep', 'partitions', 'partition_key', 'worker_partitions',
      'consumer_group', 'block_duration'],
    processing: ['idempotency_ttl', 'max_deliveries', 'concurrency', 'shutdown_timeout', 'consumer_name', 'order_by', 'processing_timeout', 'stall_timeout'],
    dlq: ['max_len', 'retention', 'retry_schedule', 'max_rounds'],
  },
  database: ['url', 'host', 'port', 'name', 'user', 'password', 'ssl_mode'],
  http: ['addr', 'max_body', 'max_json_depth', 'max_inflight_bytes', 'max_connections', 'max_connections_per_client', 'headers_timeout', 'request_timeout', 'rate_limit', 'rate_burst', 'scrub_headers'],
  forward: ['allow_private', 'timeout', 'max_retry_after', 'breaker_failures', 'breaker_cool_down'],
  health: ['endpoint'],
  metrics: ['port', 'path', 'enabled', 'max_event_types_per_tool', 'max_event_types'],
  admin: ['token', 'addr', 'login_max_failures', 'login_window', 'replay_max_events', 'replay_confirm_over'],
  log: ['level'],
  otel: ['endpoint'],
  commands: ['stream'],
  retention: ['events', 'audit', 'deliveries', 'batch'],
})

/**
 * Keys of the seed service's file that name one of ours: the value is read as the key it maps to (writing both
 * is an error). `metrics.port` becomes the health endpoint's port, where /metrics is served.
 */
export const SEED_KEY_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  'worker.stream.consumer_group': 'worker.stream.group',
  'worker.stream.block_duration': 'worker.stream.block_timeout',
  'metrics.port': 'health.endpoint',
})

/** A configuration file, read and checked for unknown keys. */
export interface ConfigFile {
  readonly path: string
  /** Leaf values by dotted path (`worker.stream.name`), after `${VAR}` interpolation; empty (`null`) values are left out. */
  readonly values: ReadonlyMap<string, unknown>
  /** The key as written in the file, for values read under another key (SEED_KEY_ALIASES), for error messages. */
  readonly writtenAs: ReadonlyMap<string, string>
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

const VARIABLE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?/g

/**
 * `text` with `${VAR}` replaced by the environment variable's value and `${VAR:-default}` by the value, or by
 * `default` when VAR is unset or empty; `$${` is a literal `${` (any other `$`, as in JSONata, stays). An unset
 * `${VAR}` without a default, or a malformed reference, throws a ConfigError naming `where` and the variable (never a value).
 *
 * @example
 * interpolate('${DB_PASSWORD}', { DB_PASSWORD: 's3cret' }, 'hookstream.yaml: database.password') // "s3cret"
 * interpolate('${PORT:-8080}', {}, 'hookstream.yaml: http.addr') // "8080"
 */
export function interpolate(text: string, env: Readonly<Record<string, string | undefined>>, where: string): string {
  return text.replace(VARIABLE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${'
    if (name === undefined) {
      throw new ConfigError(where, `has a malformed variable reference ${JSON.stringify(match)}; write \${NAME} or \${NAME:-default} (and $\${ for a literal \${)`)
    }
    const value = env[name]
    if (value !== undefined && value !== '') return value
    if (fallback !== undefined) return fallback
    throw new ConfigError(where, `uses \${${name}}, which is not set in the environment; set ${name}, or write \${${name}:-default}`)
  })
}

/** `value` with every string in it interpolated (keys are left as written); `at` is its dotted path in `file`. */
function interpolateAll(value: unknown, env: Readonly<Record<string, string | undefined>>, file: string, at: string): unknown {
  if (typeof value === 'string') return value.includes('${') ? interpolate(value, env, `${file}: ${at}`) : value
  if (Array.isArray(value)) return value.map((v, i) => interpolateAll(v, env, file, `${at}[${i}]`))
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, env, file, at === '' ? k : `${at}.${k}`)]))
  return value
}

/** Maps the seed keys (SEED_KEY_ALIASES, metrics.*) onto ours, or refuses the ones hookstream cannot honour. */
function mapSeedKeys(path: string, values: Map<string, unknown>): Map<string, string> {
  const writtenAs = new Map<string, string>()
  const enabled = values.get('metrics.enabled')
  if (enabled !== undefined && enabled !== true && enabled !== 'true') {
    throw new ConfigError(`${path}: metrics.enabled`, 'is not supported as false: hookstream always serves /metrics on the health endpoint; remove the key')
  }
  const metricsPath = values.get('metrics.path')
  if (metricsPath !== undefined && metricsPath !== '/metrics') {
    throw new ConfigError(`${path}: metrics.path`, `is not supported other than "/metrics" (got ${JSON.stringify(metricsPath)}): hookstream serves metrics at /metrics on the health endpoint; remove the key`)
  }
  values.delete('metrics.enabled')
  values.delete('metrics.path')
  for (const [seed, ours] of Object.entries(SEED_KEY_ALIASES)) {
    if (!values.has(seed)) continue
    if (values.has(ours)) throw new ConfigError(`${path}: ${seed}`, `and ${ours} are the same setting; keep one of them`)
    const value = values.get(seed)
    values.delete(seed)
    values.set(ours, seed === 'metrics.port' ? `:${String(value)}` : value)
    writtenAs.set(ours, seed)
  }
  return writtenAs
}

/**
 * Reads a YAML configuration file. String values may use `${VAR}` and `${VAR:-default}` (from `env`), so secrets
 * can come from the environment rather than the file. The seed service's key names (SEED_KEY_ALIASES,
 * `worker.redis.password`/`db`, `metrics.port`) are read as ours. Throws a ConfigError naming `key` (where the
 * path came from, e.g. `--config`) when it cannot be read, naming the line and column when it is not YAML
 * (without quoting it: the line may hold a secret), and naming the key when it is not a known one.
 *
 * @example
 * readConfigFile('hookstream.yaml', '--config').values.get('worker.stream.name') // "webhook_events"
 */
export function readConfigFile(path: string, key: string, env: Readonly<Record<string, string | undefined>> = process.env): ConfigFile {
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
  if (doc === null || doc === undefined) return { path, values, writtenAs: new Map(), tools: [] }
  if (!isRecord(doc)) throw new ConfigError(`config file ${path}`, 'must be a YAML mapping with sections such as worker:, database:, http:')
  const expanded = interpolateAll(doc, env, path, '') as Record<string, unknown>
  const tools = expanded.tools ?? []
  if (!Array.isArray(tools)) throw new ConfigError(`${path}: tools`, 'must be a list of tools')
  for (const [section, value] of Object.entries(expanded)) {
    if (section === 'tools') continue
    const known = CONFIG_FILE_KEYS[section]
    if (!known) {
      throw new ConfigError(`${path}: ${section}`, `is not a known section; sections are ${[...Object.keys(CONFIG_FILE_KEYS), 'tools'].join(', ')}`)
    }
    walk(section, path, value, known, values)
  }
  return { path, values, writtenAs: mapSeedKeys(path, values), tools }
}
