import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CONFIG_FILE_KEYS, SEED_KEY_ALIASES } from '../../src/config/config-file.js'
import { loadConfig, type Config } from '../../src/config/load-config.js'
import { parseDuration } from '../../src/core/duration.js'

// The README's configuration reference against the code: every variable and file key the config code reads is
// documented, every documented one is read, and the ranges and defaults the table states are the ones enforced.
const root = fileURLToPath(new URL('../../', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`)
  assert.ok(start >= 0, `README has a "${title}" section`)
  return readme.slice(start, readme.indexOf('\n## ', start + 5))
}

/** The rows of the Configuration table: setting, flag, env, YAML, default cells. */
const rows = section('Configuration').split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| setting') && !l.startsWith('|---'))
  .map((l) => l.slice(2, -2).split(' | '))
/** The key table of Scaling out: `ENV` / `yaml.key` | default | meaning. */
const scaleRows = section('Scaling out').split('\n').filter((l) => /^\| `[A-Z_]+` \/ `/.test(l)).map((l) => l.slice(2, -2).split(' | '))

const backticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string)
const ENV_NAME = /^[A-Z][A-Z0-9_]+$/
const documentedEnv = new Set([
  ...rows.flatMap((r) => backticked(r[2] ?? '').filter((t) => ENV_NAME.test(t))),
  ...scaleRows.map((r) => backticked(r[0] ?? '')[0] as string),
])
/** YAML paths of the table; `.addr` after `worker.redis.url` and `database.host/port/…` are spelled out. */
const documentedYaml = new Set([...rows.map((r) => r[3] ?? ''), ...scaleRows.map((r) => r[0] ?? '')].flatMap((cell) => {
  let last = ''
  return backticked(cell).filter((t) => /^\.?[a-z_]+(\.[a-z_/]+)*$/.test(t)).flatMap((t) => {
    const full = t.startsWith('.') ? `${last.slice(0, last.lastIndexOf('.'))}${t}` : t
    last = full
    const slash = /^(.*\.)([a-z_]+(?:\/[a-z_]+)+)$/.exec(full)
    return slash ? (slash[2] as string).split('/').map((k) => `${slash[1]}${k}`) : [full]
  })
}))

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? sources(join(dir, e.name))
    : e.name.endsWith('.ts') ? [join(dir, e.name)] : [])
}
const configCode = sources(join(root, 'src/config')).map((f) => readFileSync(f, 'utf8')).join('\n')
/** Variables the configuration code reads (`env: 'X'`, `opt('X', …)` in the seed settings, `retention('X', …)`). */
const readEnv = new Set([...configCode.matchAll(/env: '([A-Z0-9_]+)'|(?:opt|retention)\('([A-Z0-9_]+)'/g)].map((m) => (m[1] ?? m[2]) as string))
/**
 * Variables read elsewhere: the config file's path, tracing's sampler (`env.OTEL_…` in start-tracing.ts), and
 * the ones the OpenTelemetry SDK reads itself (the OTLP exporter its headers, the env resource detectors the
 * service name and attributes).
 */
const otherEnv = new Set(['HOOKSTREAM_CONFIG', 'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS', 'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES', ...sources(join(root, 'src')).flatMap((f) =>
  [...readFileSync(f, 'utf8').matchAll(/env\.(OTEL_[A-Z0-9_]+)/g)].map((m) => m[1] as string))])

test('every variable the config code reads is in the Configuration table (or the Scaling out key table)', () => {
  assert.ok(readEnv.size > 60, `found ${readEnv.size} variables`)
  const missing = [...readEnv].filter((k) => !documentedEnv.has(k))
  assert.equal(missing, [], `variables missing from README's configuration table: ${missing.join(', ')}`)
})

test('every variable the Configuration table names is read by the code', () => {
  const stale = [...documentedEnv].filter((k) => !readEnv.has(k) && !otherEnv.has(k))
  assert.equal(stale, [], `README documents variables nothing reads: ${stale.join(', ')}`)
})

test('every config file key is in the table (seed aliases and metrics.enabled/path are described below it)', () => {
  const leaves = Object.entries(CONFIG_FILE_KEYS).flatMap(([section, known]) => Array.isArray(known)
    ? known.map((k) => `${section}.${k}`)
    : Object.entries(known as Record<string, readonly string[]>).flatMap(([sub, keys]) => keys.map((k) => `${section}.${sub}.${k}`)))
  const describedInText = new Set([...Object.keys(SEED_KEY_ALIASES), 'metrics.enabled', 'metrics.path'])
  const missing = leaves.filter((k) => !describedInText.has(k) && !documentedYaml.has(k))
  assert.equal(missing, [], `file keys missing from README's configuration table: ${missing.join(', ')}`)
  for (const k of describedInText) assert.match(section('Configuration'), `\`${k}`, k)
  const unknown = [...documentedYaml].filter((k) => !leaves.includes(k))
  assert.equal(unknown, [], `README names file keys the config file refuses: ${unknown.join(', ')}`)
})

// values needed beside a variable for it to be accepted at all
const BESIDE: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  INGEST_RATE_BURST: { INGEST_RATE_LIMIT: '10' }, DATABASE_PORT: { DATABASE_HOST: 'db' },
  // the request timeout must be at least the headers timeout (10s by default)
  HTTP_REQUEST_TIMEOUT: { HTTP_HEADERS_TIMEOUT: '100ms' },
}
const number = (text: string) => Number(text.replace(/10([⁰¹²³⁴⁵⁶⁷⁸⁹]+)/, (_, exp: string) =>
  `1e${[...exp].map((c) => '⁰¹²³⁴⁵⁶⁷⁸⁹'.indexOf(c)).join('')}`))
const accepts = (env: Record<string, string>) => {
  try {
    loadConfig({ env })
    return true
  } catch {
    return false
  }
}

test('each integer range the table states, e.g. `WORKER_BATCH_SIZE` (1–10000), is the one enforced: both ends load, one past them does not', () => {
  let checked = 0
  for (const row of rows) {
    for (const m of (row[2] ?? '').matchAll(/`([A-Z][A-Z0-9_]+)` \((?:[^)]*?, default [^)]*|)?\(?(\d+|10[⁰¹²³⁴⁵⁶⁷⁸⁹]+)–(\d+|10[⁰¹²³⁴⁵⁶⁷⁸⁹]+)[;,)]/g)) {
      const [, key, lo, hi] = m as unknown as [string, string, string, string]
      const [min, max] = [number(lo), number(hi)]
      const beside = BESIDE[key] ?? {}
      const at = (v: number) => accepts({ ...beside, [key]: String(v) })
      assert.equal([at(min), at(max), min > 0 ? at(min - 1) : false, at(max + 1)], [true, true, false, false], `${key} (${lo}–${hi})`)
      checked++
    }
  }
  assert.ok(checked >= 15, `checked ${checked} ranges`)
})

test('each duration bound the table states, e.g. (≥ 1s), (1m–36500d), (1ms–24d), is the one enforced', () => {
  let checked = 0
  for (const row of rows) {
    const cell = row[2] ?? ''
    const m = /^`([A-Z][A-Z0-9_]+)` \((?:≥ (\d+(?:ms|s|m))|(\d+(?:ms|s|m|d)?)–(\d+(?:ms|s|m|h|d))(?: \([^)]*\))?)(?:[;,][^)]*)?\)/.exec(cell)
    if (!m || (m[2] === undefined && !/[a-z]$/.test(m[4] ?? ''))) continue
    const key = m[1] as string
    const min = parseDuration(m[2] ?? m[3] ?? '0') as number
    const max = m[4] !== undefined ? parseDuration(m[4]) as number : undefined
    const at = (ms: number) => accepts({ ...BESIDE[key], [key]: `${ms}ms` })
    // a 0 lower bound (WORKER_READ_LINGER) or 0 = off (STREAM_TRIM_INTERVAL) has no "one below"
    if (min > 1) assert.is(at(min - 1), false, `${key} refuses below ${m[2] ?? m[3]}`)
    assert.is(at(Math.max(min, 1)), true, `${key} accepts ${m[2] ?? m[3]}`)
    if (max !== undefined) assert.equal([at(max), at(max + 1)], [true, false], `${key} up to ${m[4]}`)
    checked++
  }
  assert.ok(checked >= 15, `checked ${checked} duration bounds`)
})

// where each plain default of the table ends up in the loaded Config
const DEFAULT_OF: Readonly<Record<string, (c: Config) => unknown>> = {
  STREAM_TRIM_INTERVAL: (c) => c.worker.trimIntervalMs, STREAM_TRIM_KEEP: (c) => c.worker.trimKeep,
  WORKER_IDEMPOTENCY_TTL: (c) => c.worker.idempotencyTtlMs, WORKER_BATCH_SIZE: (c) => c.worker.batchSize,
  WORKER_CONCURRENCY: (c) => c.worker.concurrency, WORKER_BLOCK_TIMEOUT: (c) => c.worker.blockTimeoutMs,
  WORKER_READ_LINGER: (c) => c.worker.readLingerMs, WORKER_CLAIM_IDLE: (c) => c.worker.claimIdleMs,
  WORKER_MAX_DELIVERIES: (c) => c.worker.maxDeliveries, WORKER_SHUTDOWN_TIMEOUT: (c) => c.worker.shutdownTimeoutMs,
  WORKER_PROCESSING_TIMEOUT: (c) => c.processingTimeoutMs, WORKER_STALL_TIMEOUT: (c) => c.worker.stallTimeoutMs,
  DLQ_MAX_LEN: (c) => c.dlq.maxLen, DLQ_RETENTION: (c) => c.dlq.retentionMs, DLQ_MAX_ROUNDS: (c) => c.dlq.policy.maxRounds,
  RETENTION_BATCH: (c) => c.retention.batch, REPLAY_MAX_EVENTS: (c) => c.admin.replayMaxEvents,
  REPLAY_CONFIRM_OVER: (c) => c.admin.replayConfirmOver, INGEST_MAX_BODY: (c) => c.http.maxBodyBytes,
  INGEST_MAX_INFLIGHT_BYTES: (c) => c.http.maxInflightBytes, INGEST_MAX_JSON_DEPTH: (c) => c.http.maxJsonDepth,
  HTTP_MAX_CONNECTIONS: (c) => c.http.maxConnections, HTTP_MAX_CONNECTIONS_PER_CLIENT: (c) => c.http.maxConnectionsPerClient,
  HTTP_HEADERS_TIMEOUT: (c) => c.http.headersTimeoutMs, HTTP_REQUEST_TIMEOUT: (c) => c.http.requestTimeoutMs,
  FORWARD_TIMEOUT: (c) => c.forward.timeoutMs, FORWARD_BREAKER_FAILURES: (c) => c.forward.breakerFailures,
  FORWARD_BREAKER_COOL_DOWN: (c) => c.forward.breakerCoolDownMs, FORWARD_MAX_RETRY_AFTER: (c) => c.forward.maxRetryAfterMs,
  METRICS_MAX_EVENT_TYPES_PER_TOOL: (c) => c.metrics.maxEventTypesPerTool, METRICS_MAX_EVENT_TYPES: (c) => c.metrics.maxEventTypes,
  ADMIN_LOGIN_MAX_FAILURES: (c) => c.admin.loginMaxFailures, ADMIN_LOGIN_WINDOW: (c) => c.admin.loginWindowMs,
  LOG_LEVEL: (c) => c.logLevel, COMMANDS_STREAM: (c) => c.commandStream, REDIS_REQUIRE_DURABLE: (c) => c.redisRequireDurable,
  FORWARD_ALLOW_PRIVATE: (c) => c.forward.allowPrivate, STREAM_NAME: (c) => c.keys.stream, STREAM_DLQ_NAME: (c) => c.keys.dlqStream,
  STREAM_GROUP: (c) => c.keys.group, HTTP_ADDR: (c) => `:${c.http.addr.port}`, HEALTH_ENDPOINT: (c) => `:${c.health.endpoint.port}`,
}

test('each default the table states is what loadConfig gives with nothing set', () => {
  const config = loadConfig({ env: {} })
  const expected = (raw: string): unknown => {
    const text = raw.replace(/`/g, '').split(' (')[0]!.trim()
    if (/^(true|false)$/.test(text)) return text === 'true'
    if (/^\d+$/.test(text)) return Number(text)
    if (/^\d+(?:[KMG]i?B)$/i.test(text)) return Number(/^\d+/.exec(text)![0]) * 1024 ** ('KMG'.indexOf(text.replace(/^\d+/, '')[0]!.toUpperCase()) + 1)
    return parseDuration(text) ?? text
  }
  const checked: string[] = []
  for (const row of rows) {
    const key = backticked(row[2] ?? '').find((t) => DEFAULT_OF[t] !== undefined)
    if (!key || row[4] === undefined) continue
    assert.equal(DEFAULT_OF[key]!(config), expected(row[4]), `${key}: README says "${row[4]}"`)
    checked.push(key)
  }
  const unchecked = Object.keys(DEFAULT_OF).filter((k) => !checked.includes(k))
  assert.equal(unchecked, [], 'every default mapped here has its row')
})

test.run()
