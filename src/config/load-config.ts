import { hostname } from 'node:os'
import { formatDuration, parseDuration } from '../core/duration.js'
import { ConfigError, isPipelineError } from '../core/errors.js'
import { headerScrubber } from '../core/scrub-headers.js'
import { MAX_RETENTION_MS } from '../db/retention.js'
import { parseTool, type ToolConfig, type ToolInput } from '../core/tool.js'
import { parseAllowPrivate, type AllowPrivate } from '../sinks/ssrf-guard.js'
import { streamKeys, type StreamKeys } from '../sources/keys.js'
import { DEFAULT_PARTITION_KEY, parsePartitionKey, type PartitionField } from '../sources/partitions.js'
import { readConfigFile } from './config-file.js'
import { checkForwardSecrets } from './forward-secrets.js'
import { ConfigSources, duration, integer, invalid, oneOf, size, text, url, type Layer, type RawSetting, type SettingSource } from './config-sources.js'
import { parseListenAddress, type ListenAddress } from './listen-address.js'
import { adminSettings, type AdminSettings } from './admin-settings.js'
import { seedSettings, type SeedSettings } from './seed-settings.js'

/** Values of LOG_LEVEL / `--log-level` / `log.level`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Values of DATABASE_SSL_MODE / `database.ssl_mode` (libpq's sslmode, added to the URL as `?sslmode=`). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const

/** Everything a hookstream process needs, validated and frozen. */
export interface Config extends SeedSettings, AdminSettings {
  /** The config file that was read, if any. */
  readonly configFile?: string
  /** A Redis server by URL, or none configured: the CLI starts an embedded one with its data in `dir`. */
  readonly redis: { readonly kind: 'server'; readonly url: string } | { readonly kind: 'embedded'; readonly dir: string }
  /** A PostgreSQL server by URL (sslmode in the URL), or none configured: embedded PGlite with its data in `path`. */
  readonly database: { readonly kind: 'postgres'; readonly url: string } | { readonly kind: 'embedded'; readonly path: string }
  readonly keys: StreamKeys
  /**
   * Refuse to start unless Redis keeps an append-only file fsynced at least every second and evicts nothing
   * (REDIS_REQUIRE_DURABLE): without AOF a Redis restart loses accepted events, an `allkeys-*` maxmemory-policy
   * drops them when Redis is full and a `volatile-*` one drops the duplicate checks. @defaultValue false: start with a warning and `/health` degraded
   */
  readonly redisRequireDurable: boolean
  /** Approximate cap on the main stream (XADD `MAXLEN ~`); unset: no cap. */
  readonly streamMaxLen?: number
  /** Scale-out: Redis Cluster, stream partitions, and per-key ordering. */
  readonly scale: {
    /** Seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES, `host:port`); set, it replaces REDIS_URL. */
    readonly clusterNodes?: readonly string[]
    /** Partitions of the main stream (STREAM_PARTITIONS); 1 is the single `webhook_events`. */
    readonly partitions: number
    /** Event fields that pick an event's partition (STREAM_PARTITION_KEY). */
    readonly partitionKey: readonly PartitionField[]
    /** Partitions this worker reads (WORKER_PARTITIONS, e.g. "0-3,6"); unset: all. */
    readonly workerPartitions?: readonly number[]
    /** Keep events with the same value of these fields in stream order (WORKER_ORDER_BY); unset: full concurrency. */
    readonly orderBy?: readonly PartitionField[]
  }
  readonly worker: {
    readonly consumerName: string
    readonly idempotencyTtlMs: number
    readonly batchSize: number
    readonly maxInFlight: number
    readonly concurrency: number
    readonly blockTimeoutMs: number
    /** Least ms between two reads of new entries at a steady rate (WORKER_READ_LINGER); 0 reads again at once. */
    readonly readLingerMs: number
    readonly claimIdleMs: number
    readonly maxDeliveries: number
    readonly shutdownTimeoutMs: number
    /**
     * A worker whose oldest pending entry is older than this while it settled nothing for as long is wedged
     * (WORKER_STALL_TIMEOUT), in ms: readiness fails and /health shows the queue unhealthy.
     */
    readonly stallTimeoutMs: number
    /** Time between safe trims of the stream(s) the worker reads (STREAM_TRIM_INTERVAL), in ms; 0: never trimmed. */
    readonly trimIntervalMs: number
    /** Newest entries each trim keeps even when every group acked them (STREAM_TRIM_KEEP); 0 keeps none. */
    readonly trimKeep: number
  }
  readonly http: {
    readonly addr: ListenAddress
    readonly maxBodyBytes: number
    /** Deepest JSON nesting ingest accepts (INGEST_MAX_JSON_DEPTH); deeper is 400 PAYLOAD_NOT_STORABLE. */
    readonly maxJsonDepth: number
    readonly maxConnections: number
    /** Open ingest connections per client address (HTTP_MAX_CONNECTIONS_PER_CLIENT). */
    readonly maxConnectionsPerClient: number
    /** Request body bytes ingest holds in memory at once (INGEST_MAX_INFLIGHT_BYTES); past it, or past a client's quarter or a tool's half of it, 503 INGEST_BUSY. */
    readonly maxInflightBytes: number
    readonly headersTimeoutMs: number
    readonly requestTimeoutMs: number
    /** Accepted requests per second per tool (token bucket shared through Redis); unset: no limit. */
    readonly rateLimit?: { readonly ratePerSecond: number; readonly burst: number }
    /** Inbound headers dropped before queueing (INGEST_SCRUB_HEADERS); unset: DEFAULT_SCRUB_HEADERS. */
    readonly scrubHeaders?: readonly string[]
  }
  /** Forwarding: private destinations allowed (SSRF guard; default false) and the request timeout. */
  readonly forward: {
    readonly allowPrivate: AllowPrivate
    readonly timeoutMs: number
    /** The longest destination Retry-After honoured (FORWARD_MAX_RETRY_AFTER), in ms; longer ones are cut to it. */
    readonly maxRetryAfterMs: number
    /** Failures in a row that open a destination's circuit breaker (FORWARD_BREAKER_FAILURES). */
    readonly breakerFailures: number
    /** Wait before an open breaker's first half-open probe, in ms (FORWARD_BREAKER_COOL_DOWN); doubles per failed probe up to 30×. */
    readonly breakerCoolDownMs: number
  }
  readonly health: { readonly endpoint: ListenAddress }
  /** Pruning by age (EVENT_RETENTION, AUDIT_RETENTION, RETENTION_BATCH); a table without a retention is kept forever. */
  readonly retention: {
    /** Stored events older than this (by received_at) are deleted, in ms; unset: kept forever. */
    readonly eventsMs?: number
    /** Audit rows older than this are deleted, in ms; unset: kept forever. */
    readonly auditMs?: number
    /** Delivery attempts (`webhook_deliveries`) older than this are deleted, in ms (DELIVERY_LOG_RETENTION); unset: kept forever. */
    readonly deliveriesMs?: number
    /** Rows per DELETE statement. */
    readonly batch: number
  }
  /** Label budgets of the `webhook_*` metrics. */
  readonly metrics: {
    /** Distinct event_type label values per tool (METRICS_MAX_EVENT_TYPES_PER_TOOL); later new ones fold into "other". */
    readonly maxEventTypesPerTool: number
    /** Distinct (tool, event_type) pairs over all tools (METRICS_MAX_EVENT_TYPES); later new ones fold into "other". */
    readonly maxEventTypes: number
  }
  /** Bearer token of the admin API; unset: the admin API is off. */
  readonly adminToken?: string
  /** Key that encrypts tool secrets at rest (HOOKSTREAM_ENCRYPTION_KEY). */
  readonly encryptionKey?: string
  /** The key before the last rotation, for reading rows not yet re-encrypted (HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS). */
  readonly encryptionKeyPrevious?: string
  readonly logLevel: LogLevel
  /** OTLP/HTTP endpoint for traces; unset: tracing exports nothing. */
  readonly otlpEndpoint?: string
  /** Tools from the config file's `tools:` list. */
  readonly tools: readonly ToolConfig[]
}

/** Where `loadConfig` reads from. */
export interface LoadConfigOptions {
  /** @defaultValue process.env */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Already-parsed CLI flags (the CLI parses them strictly, see src/cli/run-cli.ts), e.g. `{ 'redis-url': …, config: 'hookstream.yaml' }`. */
  readonly flags?: Readonly<Record<string, string | boolean | undefined>>
  /** YAML file to read; beats `--config` and `HOOKSTREAM_CONFIG`. */
  readonly file?: string
}

const LAYERS: readonly Layer[] = ['flag', 'env', 'file']

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/

function redisConfig(src: ConfigSources): Config['redis'] {
  for (const layer of LAYERS) {
    const u = src.layer(layer, { flag: 'redis-url', env: 'REDIS_URL', file: 'worker.redis.url', secret: true })
    if (u) return { kind: 'server', url: url(u, ['redis:', 'rediss:'], 'redis://localhost:6379') }
    const addr = src.layer(layer, { flag: 'redis-addr', env: 'REDIS_ADDR', file: 'worker.redis.addr' })
    if (addr) return { kind: 'server', url: `redis://${text(addr, HOST_PORT, 'a host:port such as "localhost:6379"')}` }
  }
  return { kind: 'embedded', dir: './.hookstream/redis' }
}

function databaseConfig(src: ConfigSources): Config['database'] {
  const sslRaw = src.pick({ env: 'DATABASE_SSL_MODE', file: 'database.ssl_mode' })
  const sslMode = sslRaw ? oneOf(sslRaw, SSL_MODES) : undefined
  for (const layer of LAYERS) {
    const u = src.layer(layer, { flag: 'database-url', env: 'DATABASE_URL', file: 'database.url', secret: true })
    if (u) {
      const parsed = new URL(url(u, ['postgres:', 'postgresql:'], 'postgres://user:password@localhost:5432/hookstream'))
      const urlMode = parsed.searchParams.get('sslmode')
      // two places saying different things: refuse rather than let one of them lose without a word
      if (sslRaw && urlMode !== null && urlMode !== sslMode) {
        throw new ConfigError(sslRaw.where, `is "${sslMode}" but ${u.where} says sslmode=${urlMode}; ` +
          'remove one of them or make them the same (the connection would otherwise silently use one)')
      }
      if (sslMode) parsed.searchParams.set('sslmode', sslMode)
      return { kind: 'postgres', url: parsed.toString() }
    }
    const host = src.layer(layer, { env: 'DATABASE_HOST', file: 'database.host' })
    if (host) {
      const built = new URL('postgres://localhost')
      built.hostname = text(host, /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$/, 'a host name or address')
      const port = src.pick({ env: 'DATABASE_PORT', file: 'database.port' })
      built.port = String(port ? integer(port, 1, 65535) : 5432)
      const name = src.pick({ env: 'DATABASE_NAME', file: 'database.name' })
      built.pathname = `/${encodeURIComponent(name ? text(name) : 'hookstream')}`
      const user = src.pick({ env: 'DATABASE_USER', file: 'database.user' })
      built.username = encodeURIComponent(user ? text(user) : 'postgres')
      const password = src.pick({ env: 'DATABASE_PASSWORD', file: 'database.password', secret: true })
      if (password) built.password = encodeURIComponent(text(password))
      if (sslMode) built.searchParams.set('sslmode', sslMode)
      return { kind: 'postgres', url: built.toString() }
    }
  }
  return { kind: 'embedded', path: './.hookstream/pgdata' }
}

function keysConfig(src: ConfigSources): StreamKeys {
  const name = /^[^\s]{1,200}$/
  const expected = 'a name of 1–200 characters without spaces'
  const read = (source: SettingSource) => {
    const raw = src.pick(source)
    return raw ? text(raw, name, expected) : undefined
  }
  const prefix = read({ env: 'STREAM_PREFIX', file: 'worker.stream.prefix' })
  const stream = read({ env: 'STREAM_NAME', file: 'worker.stream.name' })
  const dlqStream = read({ env: 'STREAM_DLQ_NAME', file: 'worker.stream.dlq_name' })
  const group = read({ env: 'STREAM_GROUP', file: 'worker.stream.group' })
  return streamKeys({
    ...(prefix !== undefined ? { prefix } : {}), ...(stream !== undefined ? { stream } : {}),
    ...(dlqStream !== undefined ? { dlqStream } : {}), ...(group !== undefined ? { group } : {}),
  })
}

function scaleConfig(src: ConfigSources): Config['scale'] {
  const nodesRaw = src.pick({ env: 'REDIS_CLUSTER_NODES', file: 'worker.redis.cluster_nodes' })
  const clusterNodes = nodesRaw ? text(nodesRaw).split(',').map((n) => n.trim()).filter((n) => n !== '') : undefined
  if (nodesRaw && (clusterNodes?.length === 0 || clusterNodes?.some((n) => !HOST_PORT.test(n)))) {
    invalid(nodesRaw, 'a comma-separated list of host:port such as "10.0.0.1:7000,10.0.0.2:7000"')
  }
  const partitionsRaw = src.pick({ env: 'STREAM_PARTITIONS', file: 'worker.stream.partitions' })
  const partitions = partitionsRaw ? integer(partitionsRaw, 1, 1024) : 1
  const fields = (raw: NonNullable<ReturnType<ConfigSources['pick']>>) => {
    try {
      return parsePartitionKey(text(raw))
    } catch {
      return invalid(raw, 'a comma-separated list of tenant, repository, tool, event_type')
    }
  }
  const keyRaw = src.pick({ env: 'STREAM_PARTITION_KEY', file: 'worker.stream.partition_key' })
  const orderRaw = src.pick({ env: 'WORKER_ORDER_BY', file: 'worker.processing.order_by' })
  const assignedRaw = src.pick({ env: 'WORKER_PARTITIONS', file: 'worker.stream.worker_partitions' })
  let workerPartitions: number[] | undefined
  if (assignedRaw) {
    const expected = `partition numbers or ranges from 0 to ${partitions - 1} such as "0-3,6" (STREAM_PARTITIONS is ${partitions})`
    const picked = new Set<number>()
    for (const part of text(assignedRaw).split(',').map((p) => p.trim())) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(part)
      if (!m) invalid(assignedRaw, expected)
      const from = Number(m[1])
      const to = m[2] === undefined ? from : Number(m[2])
      if (to < from || to >= partitions) invalid(assignedRaw, expected)
      for (let i = from; i <= to; i++) picked.add(i)
    }
    workerPartitions = [...picked].sort((a, b) => a - b)
  }
  return {
    ...(clusterNodes ? { clusterNodes } : {}),
    partitions,
    partitionKey: keyRaw ? fields(keyRaw) : [...DEFAULT_PARTITION_KEY],
    ...(workerPartitions ? { workerPartitions } : {}),
    ...(orderRaw ? { orderBy: fields(orderRaw) } : {}),
  }
}

// INGEST_MAX_INFLIGHT_BYTES: at least two of the largest bodies must fit, or such a body could never be admitted
// (the budget keeps its last eighth for small bodies); the default grows with INGEST_MAX_BODY
function inflightBytes(src: ConfigSources, maxBodyBytes: number): number {
  const raw = src.pick({ env: 'INGEST_MAX_INFLIGHT_BYTES', file: 'http.max_inflight_bytes' })
  if (!raw) return Math.max(64 * 1024 * 1024, 2 * maxBodyBytes)
  const bytes = size(raw, 1024)
  if (bytes < 2 * maxBodyBytes) {
    throw new ConfigError(raw.where, `must be at least twice INGEST_MAX_BODY (${maxBodyBytes} bytes), so that a body of that size can be admitted; ` +
      `got ${bytes} bytes; raise it or lower INGEST_MAX_BODY`)
  }
  return bytes
}

// Node's http server refuses a headers timeout longer than the request timeout with its own message, which names
// neither setting: the listener would fail to start instead of loadConfig naming the keys
function httpTimeouts(src: ConfigSources): { headersTimeoutMs: number; requestTimeoutMs: number } {
  const headersRaw = src.pick({ env: 'HTTP_HEADERS_TIMEOUT', file: 'http.headers_timeout' })
  const requestRaw = src.pick({ env: 'HTTP_REQUEST_TIMEOUT', file: 'http.request_timeout' })
  const headersTimeoutMs = headersRaw ? duration(headersRaw, 100) : 10_000
  const requestTimeoutMs = requestRaw ? duration(requestRaw, 100) : 30_000
  if (headersTimeoutMs > requestTimeoutMs) {
    const headersKey = headersRaw?.where ?? 'HTTP_HEADERS_TIMEOUT'
    throw new ConfigError(requestRaw?.where ?? 'HTTP_REQUEST_TIMEOUT', `must be at least ${headersKey} (${formatDuration(headersTimeoutMs)}); ` +
      `got ${formatDuration(requestTimeoutMs)}; raise it or lower ${headersKey}`)
  }
  return { headersTimeoutMs, requestTimeoutMs }
}

function tools(file: { path: string; tools: readonly unknown[] } | undefined): ToolConfig[] {
  if (!file) return []
  const seen = new Map<string, number>()
  return file.tools.map((input, i) => {
    const key = `${file.path}: tools[${i}]`
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ConfigError(key, 'must be a mapping (id, provider, secret, …)')
    let tool: ToolConfig
    try {
      tool = parseTool(input as ToolInput)
    } catch (err) {
      if (isPipelineError(err)) throw new ConfigError(key, `is invalid: ${err.message}`)
      throw err
    }
    checkForwardSecrets(key, tool)
    const earlier = seen.get(tool.id)
    if (earlier !== undefined) throw new ConfigError(key, `has id "${tool.id}" like tools[${earlier}]; tool ids must be unique`)
    seen.set(tool.id, i)
    return tool
  })
}

/**
 * Reads configuration from CLI flags, environment variables and a YAML file (flags beat env, env beats file,
 * file beats defaults) into one validated, deeply frozen Config. Bad values throw a ConfigError naming the
 * flag, variable or file key and what is expected; secret values are never repeated in the message.
 *
 * @example
 * const config = loadConfig({ flags: { config: 'hookstream.yaml' } })   // env from process.env
 * console.log(describeConfig(config))
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env
  const flags = options.flags ?? {}
  if (flags.config === true) throw new ConfigError('--config', 'needs a file path, e.g. --config hookstream.yaml')
  const fileRef = options.file !== undefined ? { path: options.file, key: 'loadConfig option "file"' }
    : typeof flags.config === 'string' && flags.config !== '' ? { path: flags.config, key: '--config' }
      : env.HOOKSTREAM_CONFIG ? { path: env.HOOKSTREAM_CONFIG, key: 'HOOKSTREAM_CONFIG' } : undefined
  const file = fileRef ? readConfigFile(fileRef.path, fileRef.key, env) : undefined
  const src = new ConfigSources(env, flags, file)
  const opt = <T>(source: SettingSource, parse: (raw: NonNullable<ReturnType<ConfigSources['pick']>>) => T): T | undefined => {
    const raw = src.pick(source)
    return raw ? parse(raw) : undefined
  }

  const batchSize = opt({ env: 'WORKER_BATCH_SIZE', file: 'worker.stream.batch_size' }, (r) => integer(r, 1, 10_000)) ?? 100
  const consumerName = opt({ flag: 'consumer', env: 'WORKER_CONSUMER_NAME', file: 'worker.processing.consumer_name' },
    (r) => text(r, /^[A-Za-z0-9._:@-]{1,200}$/, 'a consumer name of 1–200 letters, digits or "._:@-"')) ?? `worker-${hostname()}-${process.pid}`
  const otlp = opt({ env: 'OTEL_EXPORTER_OTLP_ENDPOINT', file: 'otel.endpoint' }, (r) => url(r, ['http:', 'https:'], 'http://localhost:4318'))
  const adminToken = opt({ env: 'ADMIN_TOKEN', file: 'admin.token', secret: true }, (r) => {
    const token = text(r)
    return token.length >= 16 ? token : invalid(r, 'at least 16 characters (e.g. `openssl rand -hex 24`)')
  })
  const encryptionKey = opt({ env: 'HOOKSTREAM_ENCRYPTION_KEY', secret: true }, (r) => {
    const key = text(r)
    return key.length >= 16 ? key : invalid(r, 'at least 16 characters (e.g. `openssl rand -base64 32`)')
  })
  const encryptionKeyPrevious = opt({ env: 'HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS', secret: true }, (r) => {
    const key = text(r)
    return key.length >= 16 ? key : invalid(r, 'at least 16 characters: the HOOKSTREAM_ENCRYPTION_KEY used before the rotation')
  })
  // the old key alone still reads every row, so nothing would show that every secret saved from now on is stored
  // in plain text (a rotation that renamed the variable and forgot the new one)
  if (encryptionKeyPrevious !== undefined && encryptionKey === undefined) {
    throw new ConfigError('HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS', 'is set but HOOKSTREAM_ENCRYPTION_KEY is not, so secrets saved now would be ' +
      'stored unencrypted; set HOOKSTREAM_ENCRYPTION_KEY to the new key (see "Encryption at rest and rotating the key" in the README), ' +
      'or, with no rotation under way, rename HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS back to HOOKSTREAM_ENCRYPTION_KEY')
  }
  const scrubHeaders = opt({ env: 'INGEST_SCRUB_HEADERS', file: 'http.scrub_headers' }, (r) => {
    const list = (Array.isArray(r.value) ? r.value.map(String) : text(r).split(',')).map((h) => h.trim()).filter(Boolean)
    // an empty list would replace the default one and let credentials be stored
    if (list.length === 0) invalid(r, 'at least one header name or pattern; leave it unset for the default list (authorization, cookies, *-token, *-signature, …)')
    try {
      headerScrubber(list)
      return list
    } catch {
      return invalid(r, 'a comma-separated list of header names, "*-suffix" or "prefix-*" patterns such as "authorization,*-token"')
    }
  })
  // a duration that ends up in a timer (setTimeout, setInterval): past 2^31-1 ms Node sets it to 1 ms, so
  // FORWARD_TIMEOUT=30d would time every forward out at once; 24d stays below that with the margins added to it
  const timerDuration = (r: RawSetting, minMs: number) => {
    const ms = duration(r, minMs)
    return ms > 24 * 86_400_000 ? invalid(r, 'a duration up to 24d such as "10s" or "1m"') : ms
  }
  // a duration setting's milliseconds ("10s", "1m", 250), or undefined when it is not a duration
  const durationMs = (r: { readonly value: unknown }) => (typeof r.value === 'string' || typeof r.value === 'number' ? parseDuration(r.value) : undefined)
  const trimIntervalMs = opt({ env: 'STREAM_TRIM_INTERVAL', file: 'worker.stream.trim_interval' }, (r) => {
    if (r.value === false || (typeof r.value === 'string' && r.value.toLowerCase() === 'off')) return 0
    const ms = durationMs(r)
    // below 10 ms the trimmer would only compete with the worker for Redis; past 2^31-1 ms setTimeout overflows,
    // and 24d, the bound the message states, keeps below it as the other timer settings do
    if (ms === undefined || (ms !== 0 && (ms < 10 || ms > 24 * 86_400_000))) {
      invalid(r, 'a duration from 10ms to 24d such as "10s" or "1m", or 0 or "off" to disable trimming')
    }
    return ms
  })
  const readLingerMs = opt({ env: 'WORKER_READ_LINGER', file: 'worker.stream.read_linger' }, (r) => {
    const ms = durationMs(r)
    // more than a second between reads is a latency no webhook sender expects; 0 reads again at once
    if (ms === undefined || ms > 1000) invalid(r, 'a duration from 0 to 1s such as "10ms"')
    return ms
  })
  const streamMaxLen = opt({ env: 'STREAM_MAXLEN', file: 'worker.stream.max_len' }, (r) => integer(r, 1, Number.MAX_SAFE_INTEGER))
  const ratePerSecond = opt({ env: 'INGEST_RATE_LIMIT', file: 'http.rate_limit' }, (r) => integer(r, 1, 1_000_000))
  const rateBurstRaw = src.pick({ env: 'INGEST_RATE_BURST', file: 'http.rate_burst' })
  const rateBurst = rateBurstRaw ? integer(rateBurstRaw, 1, 1_000_000) : undefined
  // a burst alone limits nothing: the operator who set it believes ingest is limited
  if (rateBurstRaw && ratePerSecond === undefined) {
    throw new ConfigError(rateBurstRaw.where, 'is set without INGEST_RATE_LIMIT, so no ingest limit would apply; ' +
      'set INGEST_RATE_LIMIT (accepted requests per second per tool) too, or remove it')
  }
  const allowPrivate = opt({ env: 'FORWARD_ALLOW_PRIVATE', file: 'forward.allow_private' }, (r) => {
    try {
      return parseAllowPrivate(text(r))
    } catch {
      return invalid(r, 'true, false, or a comma-separated CIDR list such as "10.0.0.0/8,fd00::/8"')
    }
  })

  // a retention is a duration from a minute to 100 years (its cutoff must be a time PostgreSQL has), or "off" (the
  // default): kept forever
  const retention = (env: string, file: string) => opt({ env, file }, (r) => {
    if (r.value === false || (typeof r.value === 'string' && r.value.toLowerCase() === 'off')) return undefined
    const ms = durationMs(r)
    return ms !== undefined && ms >= 60_000 && ms <= MAX_RETENTION_MS ? ms
      : invalid(r, 'a duration from 1m to 36500d (100 years) such as "720h" or "90d", or "off" to keep rows forever')
  })
  const eventsRetentionMs = retention('EVENT_RETENTION', 'retention.events')
  const auditRetentionMs = retention('AUDIT_RETENTION', 'retention.audit')
  const deliveriesRetentionMs = retention('DELIVERY_LOG_RETENTION', 'retention.deliveries')
  const maxBodyBytes = opt({ env: 'INGEST_MAX_BODY', file: 'http.max_body' }, (r) => {
    const bytes = size(r, 1024)
    // as a tool's max_body: a larger body is held whole in memory, twice over in the in-flight budget
    return bytes <= 1024 ** 3 ? bytes : invalid(r, 'a size of at most 1GiB, such as "10MiB"')
  }) ?? 10 * 1024 * 1024

  const config: Config = {
    ...(file ? { configFile: file.path } : {}),
    redis: redisConfig(src),
    database: databaseConfig(src),
    keys: keysConfig(src),
    ...(streamMaxLen !== undefined ? { streamMaxLen } : {}),
    redisRequireDurable: opt({ env: 'REDIS_REQUIRE_DURABLE', file: 'worker.redis.require_durable' }, (r) => oneOf(r, ['true', 'false'] as const)) === 'true',
    scale: scaleConfig(src),
    worker: {
      consumerName,
      idempotencyTtlMs: opt({ env: 'WORKER_IDEMPOTENCY_TTL', file: 'worker.processing.idempotency_ttl' }, (r) => duration(r, 1000)) ?? 86_400_000,
      batchSize,
      // two batches' worth: the next read overlaps the write of the previous batch (measured +43% at batch 500)
      maxInFlight: opt({ env: 'WORKER_MAX_IN_FLIGHT', file: 'worker.stream.max_in_flight' }, (r) => integer(r, 1, 100_000)) ?? 2 * batchSize,
      concurrency: opt({ env: 'WORKER_CONCURRENCY', file: 'worker.processing.concurrency' }, (r) => integer(r, 1, 10_000)) ?? 2,
      blockTimeoutMs: opt({ env: 'WORKER_BLOCK_TIMEOUT', file: 'worker.stream.block_timeout' }, (r) => duration(r)) ?? 5000,
      // at a steady rate a read every 10 ms: in the 3,000/s soak the worker's CPU fell ~15% and PostgreSQL's ~18%
      // for ~5 ms more p50 latency (25 ms saved little more and doubled p99)
      readLingerMs: readLingerMs ?? 10,
      claimIdleMs: opt({ env: 'WORKER_CLAIM_IDLE', file: 'worker.stream.claim_idle' }, (r) => timerDuration(r, 1000)) ?? 60_000,
      maxDeliveries: opt({ env: 'WORKER_MAX_DELIVERIES', file: 'worker.processing.max_deliveries' }, (r) => integer(r, 1, 1000)) ?? 10,
      shutdownTimeoutMs: opt({ env: 'WORKER_SHUTDOWN_TIMEOUT', file: 'worker.processing.shutdown_timeout' }, (r) => timerDuration(r, 1)) ?? 30_000,
      stallTimeoutMs: opt({ env: 'WORKER_STALL_TIMEOUT', file: 'worker.processing.stall_timeout' }, (r) => duration(r, 1000)) ?? 300_000,
      trimIntervalMs: trimIntervalMs ?? 10_000,
      trimKeep: opt({ env: 'STREAM_TRIM_KEEP', file: 'worker.stream.trim_keep' }, (r) => integer(r, 0, Number.MAX_SAFE_INTEGER)) ?? 0,
    },
    http: {
      addr: opt({ flag: 'http-addr', env: 'HTTP_ADDR', file: 'http.addr' }, (r) => parseListenAddress(text(r), r.where)) ?? parseListenAddress(':8080'),
      maxBodyBytes,
      maxJsonDepth: opt({ env: 'INGEST_MAX_JSON_DEPTH', file: 'http.max_json_depth' }, (r) => integer(r, 1, 10_000)) ?? 512,
      maxConnections: opt({ env: 'HTTP_MAX_CONNECTIONS', file: 'http.max_connections' }, (r) => integer(r, 1, 1_000_000)) ?? 1024,
      maxConnectionsPerClient: opt({ env: 'HTTP_MAX_CONNECTIONS_PER_CLIENT', file: 'http.max_connections_per_client' }, (r) => integer(r, 1, 1_000_000)) ?? 64,
      maxInflightBytes: inflightBytes(src, maxBodyBytes),
      ...httpTimeouts(src),
      ...(ratePerSecond !== undefined ? { rateLimit: { ratePerSecond, burst: rateBurst ?? ratePerSecond } } : {}),
      ...(scrubHeaders !== undefined ? { scrubHeaders } : {}),
    },
    forward: {
      allowPrivate: allowPrivate ?? false,
      timeoutMs: opt({ env: 'FORWARD_TIMEOUT', file: 'forward.timeout' }, (r) => timerDuration(r, 1)) ?? 10_000,
      maxRetryAfterMs: opt({ env: 'FORWARD_MAX_RETRY_AFTER', file: 'forward.max_retry_after' }, (r) => duration(r, 1000)) ?? 3_600_000,
      breakerFailures: opt({ env: 'FORWARD_BREAKER_FAILURES', file: 'forward.breaker_failures' }, (r) => integer(r, 1, 10_000)) ?? 5,
      // it grows to 30× and feeds timers (the probe, forgetting an idle breaker): 1h keeps them far below Node's limit
      breakerCoolDownMs: opt({ env: 'FORWARD_BREAKER_COOL_DOWN', file: 'forward.breaker_cool_down' }, (r) => {
        const ms = duration(r, 100)
        return ms <= 3_600_000 ? ms : invalid(r, 'a duration from 100ms to 1h such as "10s" or "1m"')
      }) ?? 10_000,
    },
    health: {
      endpoint: opt({ flag: 'health-endpoint', env: 'HEALTH_ENDPOINT', file: 'health.endpoint' }, (r) => parseListenAddress(text(r), r.where)) ??
        parseListenAddress(':8088'),
    },
    retention: {
      ...(eventsRetentionMs !== undefined ? { eventsMs: eventsRetentionMs } : {}),
      ...(auditRetentionMs !== undefined ? { auditMs: auditRetentionMs } : {}),
      ...(deliveriesRetentionMs !== undefined ? { deliveriesMs: deliveriesRetentionMs } : {}),
      batch: opt({ env: 'RETENTION_BATCH', file: 'retention.batch' }, (r) => integer(r, 1, 100_000)) ?? 1000,
    },
    metrics: {
      maxEventTypesPerTool: opt({ env: 'METRICS_MAX_EVENT_TYPES_PER_TOOL', file: 'metrics.max_event_types_per_tool' }, (r) => integer(r, 1, 10_000)) ?? 50,
      maxEventTypes: opt({ env: 'METRICS_MAX_EVENT_TYPES', file: 'metrics.max_event_types' }, (r) => integer(r, 1, 1_000_000)) ?? 1000,
    },
    ...(adminToken !== undefined ? { adminToken } : {}),
    ...(encryptionKey !== undefined ? { encryptionKey } : {}),
    ...(encryptionKeyPrevious !== undefined ? { encryptionKeyPrevious } : {}),
    logLevel: opt({ flag: 'log-level', env: 'LOG_LEVEL', file: 'log.level' }, (r) => oneOf(r, LOG_LEVELS)) ?? 'info',
    ...(otlp !== undefined ? { otlpEndpoint: otlp } : {}),
    tools: tools(file),
    ...seedSettings(src),
    ...adminSettings(src),
  }
  return deepFreeze(config)
}
