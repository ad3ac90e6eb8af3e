import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/load-config.js'

const dir = mkdtempSync(join(tmpdir(), 'hookstream-config-'))
let n = 0
function yamlFile(text: string): string {
  const path = join(dir, `config-${n++}.yaml`)
  writeFileSync(path, text)
  return path
}
function failure(run: () => unknown): Error & { key?: string; code?: string } {
  try {
    run()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected loadConfig to throw')
}

const Load = suite('loadConfig')
Load.after(() => rmSync(dir, { recursive: true, force: true }))

Load('with nothing set, Redis and PostgreSQL are embedded and every default applies', () => {
  const c = loadConfig({ env: {} })
  assert.equal(c.redis, { kind: 'embedded', dir: './.hookstream/redis' })
  assert.equal(c.database, { kind: 'embedded', path: './.hookstream/pgdata' })
  assert.is(c.keys.stream, 'webhook_events')
  assert.is(c.keys.group, 'webhook_workers')
  assert.equal(c.worker, {
    consumerName: `worker-${hostname()}-${process.pid}`, idempotencyTtlMs: 86_400_000, batchSize: 100, maxInFlight: 200,
    concurrency: 2, blockTimeoutMs: 5000, readLingerMs: 10, claimIdleMs: 60_000, maxDeliveries: 10, shutdownTimeoutMs: 30_000, stallTimeoutMs: 300_000,
    trimIntervalMs: 10_000, trimKeep: 0,
  })
  assert.equal(c.http, {
    addr: { host: '0.0.0.0', port: 8080 }, maxBodyBytes: 10 * 1024 * 1024, maxJsonDepth: 512,
    maxConnections: 1024, maxConnectionsPerClient: 64, maxInflightBytes: 64 * 1024 * 1024, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000,
  })
  // the service refuses private forward destinations unless told otherwise (SSRF guard)
  assert.equal(c.forward, { allowPrivate: false, timeoutMs: 10_000, maxRetryAfterMs: 3_600_000, breakerFailures: 5, breakerCoolDownMs: 10_000 })
  assert.equal(c.health.endpoint, { host: '0.0.0.0', port: 8088 })
  assert.is(c.logLevel, 'info')
  assert.is(c.streamMaxLen, undefined)
  assert.is(c.adminToken, undefined)
  assert.equal(c.tools, [])
})

Load('the result is deeply frozen', () => {
  const c = loadConfig({ env: { REDIS_ADDR: 'localhost:6379' } })
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.worker) && Object.isFrozen(c.redis) && Object.isFrozen(c.http.addr))
  assert.throws(() => { (c.worker as { batchSize: number }).batchSize = 1 })
})

Load('flags beat env, env beats the file, the file beats defaults', () => {
  const file = yamlFile(`
worker:
  redis: { url: "redis://file:6379" }
  stream: { batch_size: 7, block_timeout: 2s, name: file_events }
  processing: { idempotency_ttl: 1h, consumer_name: file-consumer }
http: { addr: ":7000", max_body: 1mb }
log: { level: warn }
`)
  const fileOnly = loadConfig({ env: {}, file })
  assert.equal(fileOnly.redis, { kind: 'server', url: 'redis://file:6379' })
  assert.is(fileOnly.worker.batchSize, 7)
  assert.is(fileOnly.worker.maxInFlight, 14, "two batches by default")
  assert.is(fileOnly.worker.blockTimeoutMs, 2000)
  assert.is(fileOnly.worker.idempotencyTtlMs, 3_600_000)
  assert.is(fileOnly.keys.stream, 'file_events')
  assert.is(fileOnly.http.maxBodyBytes, 1024 * 1024)
  assert.is(fileOnly.logLevel, 'warn')
  assert.is(fileOnly.configFile, file)

  const env = { REDIS_ADDR: 'envhost:6380', WORKER_BATCH_SIZE: '50', LOG_LEVEL: 'debug', HTTP_ADDR: '127.0.0.1:7001', WORKER_CONSUMER_NAME: 'env-consumer' }
  const withEnv = loadConfig({ env, file })
  assert.equal(withEnv.redis, { kind: 'server', url: 'redis://envhost:6380' })
  assert.is(withEnv.worker.batchSize, 50)
  assert.is(withEnv.worker.blockTimeoutMs, 2000)
  assert.is(withEnv.logLevel, 'debug')
  assert.equal(withEnv.http.addr, { host: '127.0.0.1', port: 7001 })
  assert.is(withEnv.worker.consumerName, 'env-consumer')

  const withFlags = loadConfig({ env, flags: { config: file, 'redis-url': 'redis://flag:6381', 'log-level': 'error', 'http-addr': '[::1]:7002', consumer: 'flag-consumer' } })
  assert.equal(withFlags.redis, { kind: 'server', url: 'redis://flag:6381' })
  assert.is(withFlags.logLevel, 'error')
  assert.equal(withFlags.http.addr, { host: '::1', port: 7002 })
  assert.is(withFlags.worker.consumerName, 'flag-consumer')
  assert.is(withFlags.worker.batchSize, 50)
})

Load('an empty environment variable counts as unset', () => {
  const file = yamlFile('log: { level: warn }\n')
  assert.is(loadConfig({ env: { LOG_LEVEL: '' }, file }).logLevel, 'warn')
})

Load('the config file path comes from the file option, --config or HOOKSTREAM_CONFIG', () => {
  const file = yamlFile('log: { level: trace }\n')
  assert.is(loadConfig({ env: { HOOKSTREAM_CONFIG: file } }).logLevel, 'trace')
  assert.is(loadConfig({ env: {}, flags: { config: file } }).logLevel, 'trace')
  const err = failure(() => loadConfig({ env: {}, flags: { config: join(dir, 'missing.yaml') } }))
  assert.match(err.message, /^--config names the file ".*missing\.yaml", which cannot be read \(ENOENT\)/)
})

Load('DATABASE_HOST and its parts build a URL with the password encoded; env parts beat a file URL', () => {
  const file = yamlFile('database: { url: "postgres://file@filehost/filedb", ssl_mode: require }\n')
  const c = loadConfig({ env: { DATABASE_HOST: 'db.internal', DATABASE_PORT: '6543', DATABASE_NAME: 'hooks', DATABASE_USER: 'app', DATABASE_PASSWORD: 'p@ss%word' }, file })
  assert.equal(c.database, { kind: 'postgres', url: 'postgres://app:p%40ss%25word@db.internal:6543/hooks?sslmode=require' })
  const u = new URL((c.database as { url: string }).url)
  assert.is(decodeURIComponent(u.password), 'p@ss%word')
  const fromFile = loadConfig({ env: {}, file })
  assert.equal(fromFile.database, { kind: 'postgres', url: 'postgres://file@filehost/filedb?sslmode=require' })
  const agreeing = loadConfig({ env: { DATABASE_URL: 'postgres://env@envhost/db?sslmode=verify-full', DATABASE_SSL_MODE: 'verify-full' } })
  assert.equal(agreeing.database, { kind: 'postgres', url: 'postgres://env@envhost/db?sslmode=verify-full' })
})

Load('DATABASE_SSL_MODE and an sslmode in DATABASE_URL that disagree stop startup naming both', () => {
  const err = failure(() => loadConfig({ env: { DATABASE_URL: 'postgres://env:s3cret@envhost/db?sslmode=disable', DATABASE_SSL_MODE: 'verify-full' } }))
  assert.is(err.code, 'CONFIG_INVALID')
  assert.is(err.message, 'DATABASE_SSL_MODE is "verify-full" but DATABASE_URL says sslmode=disable; ' +
    'remove one of them or make them the same (the connection would otherwise silently use one)')
  assert.not.ok(err.message.includes('s3cret'))
  const file = yamlFile('database: { url: "postgres://file@filehost/filedb?sslmode=require", ssl_mode: disable }\n')
  assert.match(failure(() => loadConfig({ env: {}, file })).message, /: database\.ssl_mode is "disable" but .*: database\.url says sslmode=require; /)
})

Load('a bad value names the key, what was expected and what was given', () => {
  const cases: [Record<string, string>, string][] = [
    [{ WORKER_IDEMPOTENCY_TTL: '1 day' }, 'WORKER_IDEMPOTENCY_TTL must be a duration such as "24h" or "90m"; got "1 day"'],
    [{ WORKER_BATCH_SIZE: '0' }, 'WORKER_BATCH_SIZE must be an integer from 1 to 10000; got "0"'],
    [{ WORKER_READ_LINGER: '2s' }, 'WORKER_READ_LINGER must be a duration from 0 to 1s such as "10ms"; got "2s"'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of trace, debug, info, warn, error; got "loud"'],
    [{ INGEST_MAX_BODY: '10 parsecs' }, 'INGEST_MAX_BODY must be a size such as "10MiB", "512kb" or a number of bytes (at least 1024); got "10 parsecs"'],
    [{ HEALTH_ENDPOINT: '8088' }, 'HEALTH_ENDPOINT must be a listen address such as ":8080", "127.0.0.1:8080" or "[::1]:8080"; got "8088"'],
    [{ REDIS_ADDR: 'redis://x' }, 'REDIS_ADDR must be a host:port such as "localhost:6379"; got "redis://x"'],
    [{ DATABASE_SSL_MODE: 'sometimes', DATABASE_HOST: 'db' }, 'DATABASE_SSL_MODE must be one of disable, allow, prefer, require, verify-ca, verify-full; got "sometimes"'],
  ]
  for (const [env, message] of cases) {
    const err = failure(() => loadConfig({ env }))
    assert.is(err.code, 'CONFIG_INVALID')
    assert.is(err.message, message)
  }
  const fileErr = failure(() => loadConfig({ env: {}, file: yamlFile('worker:\n  processing:\n    idempotency_ttl: 1 day\n') }))
  assert.match(fileErr.message, /: worker\.processing\.idempotency_ttl must be a duration such as "24h" or "90m"; got "1 day"$/)
  assert.match(failure(() => loadConfig({ env: {}, flags: { 'log-level': true } })).message, /^--log-level needs a value/)
})

Load('secrets never appear in error messages', () => {
  const cases: Record<string, string>[] = [
    { REDIS_URL: 'http://:hunter2-secret@localhost:6379' },
    { DATABASE_URL: 'mysql://root:hunter2-secret@db/x' },
    { ADMIN_TOKEN: 'hunter2-secret'.slice(0, 10) },
    { HOOKSTREAM_ENCRYPTION_KEY: 'hunter2' },
  ]
  for (const env of cases) {
    const err = failure(() => loadConfig({ env }))
    const [key, value] = Object.entries(env)[0]!
    assert.ok(err.message.startsWith(`${key} must be`), err.message)
    assert.match(err.message, /\(value hidden\)/)
    assert.not.match(err.message, 'hunter2')
    assert.not.match(err.message, value)
  }
  const yaml = failure(() => loadConfig({ env: {}, file: yamlFile('database:\n  password: "hunter2-secret\n') }))
  assert.match(yaml.message, /is not valid YAML at line \d+, column \d+/)
  assert.not.match(yaml.message, 'hunter2')
})

Load('unknown file keys and sections are refused with the known ones listed', () => {
  const key = failure(() => loadConfig({ env: {}, file: yamlFile('worker:\n  stream:\n    nmae: x\n') }))
  assert.match(key.message, /: worker\.stream\.nmae is not a known key; keys of worker\.stream are name, group, dlq_name/)
  const section = failure(() => loadConfig({ env: {}, file: yamlFile('loggin: { level: info }\n') }))
  assert.match(section.message, /: loggin is not a known section; sections are worker, database, http/)
})

Load('tools in the file are parsed; a bad or duplicate one names its index and id, never its secret', () => {
  const ok = loadConfig({ env: {}, file: yamlFile(`
tools:
  - { id: gh-main, provider: github, secret: s3cret-value, tenant_id: acme }
  - { id: open, provider: generic, signature: none }
`) })
  assert.equal(ok.tools.map((t) => [t.id, t.provider, t.tenantId]), [['gh-main', 'github', 'acme'], ['open', 'generic', 'default']])
  const bad = failure(() => loadConfig({ env: {}, file: yamlFile('tools:\n  - { id: a, provider: github, secret: s3cret-value }\n  - { id: gh, provider: gitlob, secret: s3cret-value }\n') }))
  assert.match(bad.message, /: tools\[1\] is invalid: tool "gh": field "provider" must be one of/)
  assert.not.match(bad.message, 's3cret')
  const dup = failure(() => loadConfig({ env: {}, file: yamlFile('tools:\n  - { id: a, provider: github, secret: x }\n  - { id: a, provider: github, secret: y }\n') }))
  assert.match(dup.message, /: tools\[1\] has id "a" like tools\[0\]; tool ids must be unique/)
})

Load('a YAML tool whose transform does not compile fails startup with the compiler\'s message (#15)', () => {
  const bad = failure(() => loadConfig({ env: {}, file: yamlFile('tools:\n  - { id: tx, provider: github, secret: s3cret-value, processing_mode: transform_and_store, transform: { n: "$count(" } }\n') }))
  assert.match(bad.message, /: tools\[0\] is invalid: tool "tx": field "transform\.n" does not compile as JSONata: .+/)
})

Load('stream names, prefix, max length and the remaining worker settings are read', () => {
  const c = loadConfig({ env: {
    STREAM_PREFIX: 'stg:', STREAM_NAME: 'events', STREAM_GROUP: 'g', STREAM_MAXLEN: '5000', WORKER_MAX_IN_FLIGHT: '300', WORKER_CLAIM_IDLE: '2m',
    WORKER_MAX_DELIVERIES: '3', WORKER_SHUTDOWN_TIMEOUT: '10s', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318', ADMIN_TOKEN: 'a'.repeat(32),
  } })
  assert.is(c.keys.stream, 'events')
  assert.is(c.keys.dlqStream, 'stg:webhook_events_dlq')
  assert.is(c.keys.group, 'g')
  assert.is(c.keys.deliveryPrefix, 'stg:webhook:delivery:')
  assert.is(c.streamMaxLen, 5000)
  assert.equal([c.worker.maxInFlight, c.worker.claimIdleMs, c.worker.maxDeliveries, c.worker.shutdownTimeoutMs], [300, 120_000, 3, 10_000])
  assert.is(c.otlpEndpoint, 'http://otel:4318')
  assert.is(c.adminToken, 'a'.repeat(32))
})

Load('stream trimming: every 10s keeping none by default; interval and keep from env or file; 0 or "off" disables', () => {
  const d = loadConfig({ env: {} })
  assert.equal([d.worker.trimIntervalMs, d.worker.trimKeep], [10_000, 0])
  const c = loadConfig({ env: { STREAM_TRIM_INTERVAL: '500ms', STREAM_TRIM_KEEP: '1000' } })
  assert.equal([c.worker.trimIntervalMs, c.worker.trimKeep], [500, 1000])
  for (const off of ['0', 'off', 'OFF', '0s']) assert.is(loadConfig({ env: { STREAM_TRIM_INTERVAL: off } }).worker.trimIntervalMs, 0)
  const f = loadConfig({ env: {}, file: yamlFile('worker:\n  stream:\n    max_len: 100000\n    trim_interval: 1m\n    trim_keep: 50\n') })
  assert.equal([f.worker.trimIntervalMs, f.worker.trimKeep, f.streamMaxLen], [60_000, 50, 100_000])
  assert.is(loadConfig({ env: {}, file: yamlFile('worker:\n  stream:\n    trim_interval: 0\n') }).worker.trimIntervalMs, 0)
  // env beats the file
  assert.is(loadConfig({ env: { STREAM_TRIM_INTERVAL: '2s' }, file: yamlFile('worker:\n  stream: { trim_interval: 1m }\n') }).worker.trimIntervalMs, 2000)
})

Load('retention: off by default; EVENT_RETENTION, AUDIT_RETENTION and RETENTION_BATCH from env or file; "off" keeps rows; a bad value names the key', () => {
  assert.equal(loadConfig({ env: {} }).retention, { batch: 1000 })
  assert.equal(loadConfig({ env: { EVENT_RETENTION: '720h', AUDIT_RETENTION: '365d', RETENTION_BATCH: '500' } }).retention,
    { eventsMs: 720 * 3_600_000, auditMs: 365 * 86_400_000, batch: 500 })
  assert.equal(loadConfig({ env: {}, file: yamlFile('retention:\n  events: 30d\n  audit: off\n  batch: 2000\n') }).retention, { eventsMs: 30 * 86_400_000, batch: 2000 })
  assert.equal(loadConfig({ env: { DELIVERY_LOG_RETENTION: '168h' } }).retention, { deliveriesMs: 168 * 3_600_000, batch: 1000 })
  assert.equal(loadConfig({ env: {}, file: yamlFile('retention: { deliveries: 7d }\n') }).retention, { deliveriesMs: 7 * 86_400_000, batch: 1000 })
  assert.equal(loadConfig({ env: { EVENT_RETENTION: 'off' }, file: yamlFile('retention: { events: 30d }\n') }).retention, { batch: 1000 })
  assert.equal(loadConfig({ env: { EVENT_RETENTION: '36500d' } }).retention, { eventsMs: 36_500 * 86_400_000, batch: 1000 })
  const expected = 'must be a duration from 1m to 36500d (100 years) such as "720h" or "90d", or "off" to keep rows forever'
  for (const [env, message] of [
    [{ EVENT_RETENTION: '30s' }, `EVENT_RETENTION ${expected}; got "30s"`],
    // past ~6,700 years the cutoff is before PostgreSQL's first timestamp (and past ~270,000 no Date): every prune fails
    [{ EVENT_RETENTION: '3000000d' }, `EVENT_RETENTION ${expected}; got "3000000d"`],
    [{ AUDIT_RETENTION: '36501d' }, `AUDIT_RETENTION ${expected}; got "36501d"`],
    [{ DELIVERY_LOG_RETENTION: '1000000000d' }, `DELIVERY_LOG_RETENTION ${expected}; got "1000000000d"`],
    [{ AUDIT_RETENTION: 'forever' }, `AUDIT_RETENTION ${expected}; got "forever"`],
    [{ DELIVERY_LOG_RETENTION: '1s' }, `DELIVERY_LOG_RETENTION ${expected}; got "1s"`],
    [{ RETENTION_BATCH: '0' }, 'RETENTION_BATCH must be'],
  ] as [Record<string, string>, string][]) {
    assert.throws(() => loadConfig({ env }), (err: Error) => err.message.includes(message), JSON.stringify(env))
  }
})

Load('WORKER_READ_LINGER: a duration up to 1s, 10ms by default', () => {
  assert.is(loadConfig({ env: { WORKER_READ_LINGER: '10ms' } }).worker.readLingerMs, 10)
  assert.is(loadConfig({ env: { WORKER_READ_LINGER: '0' } }).worker.readLingerMs, 0)
})

Load('circuit-breaker settings: FORWARD_BREAKER_FAILURES and FORWARD_BREAKER_COOL_DOWN from env or file; a bad value names the key', () => {
  const env = loadConfig({ env: { FORWARD_BREAKER_FAILURES: '3', FORWARD_BREAKER_COOL_DOWN: '30s' } }).forward
  assert.equal([env.breakerFailures, env.breakerCoolDownMs], [3, 30_000])
  const file = loadConfig({ env: {}, file: yamlFile('forward:\n  breaker_failures: 8\n  breaker_cool_down: 2m\n') }).forward
  assert.equal([file.breakerFailures, file.breakerCoolDownMs], [8, 120_000])
  assert.throws(() => loadConfig({ env: { FORWARD_BREAKER_FAILURES: '0' } }), /FORWARD_BREAKER_FAILURES must be/)
  assert.throws(() => loadConfig({ env: { FORWARD_BREAKER_COOL_DOWN: 'soon' } }), /FORWARD_BREAKER_COOL_DOWN must be/)
  // the cool-down grows to 30× and an idle open breaker is forgotten 2 cool-downs after its probe: timers that
  // must stay below Node's ~24.8-day limit, past which they fire at once, over and over
  assert.is(loadConfig({ env: { FORWARD_BREAKER_COOL_DOWN: '1h' } }).forward.breakerCoolDownMs, 3_600_000)
  assert.throws(() => loadConfig({ env: { FORWARD_BREAKER_COOL_DOWN: '61m' } }), /FORWARD_BREAKER_COOL_DOWN must be a duration from 100ms to 1h/)
  assert.throws(() => loadConfig({ env: {}, file: yamlFile('forward:\n  breaker_cool_down: 30d\n') }), /forward.breaker_cool_down must be a duration from 100ms to 1h/)
})

Load('http.max_json_depth is read from the config file like INGEST_MAX_JSON_DEPTH', () => {
  assert.is(loadConfig({ env: {}, file: yamlFile('http:\n  max_json_depth: 64\n') }).http.maxJsonDepth, 64)
  assert.is(loadConfig({ env: { INGEST_MAX_JSON_DEPTH: '32' }, file: yamlFile('http: { max_json_depth: 64 }\n') }).http.maxJsonDepth, 32)
})

Load('metric label budgets: 50 event types per tool and 1000 in total by default; read from env or file, bad values named', () => {
  assert.equal(loadConfig({ env: {} }).metrics, { maxEventTypesPerTool: 50, maxEventTypes: 1000 })
  assert.equal(loadConfig({ env: { METRICS_MAX_EVENT_TYPES_PER_TOOL: '20', METRICS_MAX_EVENT_TYPES: '300' } }).metrics, { maxEventTypesPerTool: 20, maxEventTypes: 300 })
  const f = loadConfig({ env: { METRICS_MAX_EVENT_TYPES: '400' }, file: yamlFile('metrics:\n  max_event_types_per_tool: 10\n  max_event_types: 100\n') })
  assert.equal(f.metrics, { maxEventTypesPerTool: 10, maxEventTypes: 400 })
  const err = failure(() => loadConfig({ env: { METRICS_MAX_EVENT_TYPES_PER_TOOL: '0' } }))
  assert.is(err.code, 'CONFIG_INVALID')
  assert.is(err.message, 'METRICS_MAX_EVENT_TYPES_PER_TOOL must be an integer from 1 to 10000; got "0"')
})

Load('a bad trim interval or keep names the key, what is expected and what was given', () => {
  const interval = 'must be a duration from 10ms to 24d such as "10s" or "1m", or 0 or "off" to disable trimming'
  const cases: [Record<string, string>, string][] = [
    [{ STREAM_TRIM_INTERVAL: 'sometimes' }, `STREAM_TRIM_INTERVAL ${interval}; got "sometimes"`],
    [{ STREAM_TRIM_INTERVAL: '5ms' }, `STREAM_TRIM_INTERVAL ${interval}; got "5ms"`],
    [{ STREAM_TRIM_INTERVAL: '30d' }, `STREAM_TRIM_INTERVAL ${interval}; got "30d"`],
    [{ STREAM_TRIM_KEEP: '-1' }, `STREAM_TRIM_KEEP must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}; got "-1"`],
    [{ STREAM_TRIM_KEEP: '10k' }, `STREAM_TRIM_KEEP must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}; got "10k"`],
  ]
  for (const [env, message] of cases) {
    const err = failure(() => loadConfig({ env }))
    assert.is(err.code, 'CONFIG_INVALID')
    assert.is(err.message, message)
  }
  const fileErr = failure(() => loadConfig({ env: {}, file: yamlFile('worker:\n  stream:\n    trim_keep: 1.5\n') }))
  assert.match(fileErr.message, /: worker\.stream\.trim_keep must be an integer from 0 to \d+; got "1\.5"$/)
})

Load('rate limit, abuse limits and the SSRF allow-list are read from env; a bad list names the key', () => {
  const c = loadConfig({ env: { INGEST_RATE_LIMIT: '50', FORWARD_ALLOW_PRIVATE: '10.0.0.0/8,127.0.0.1/32', HTTP_HEADERS_TIMEOUT: '2s' } })
  assert.equal(c.http.rateLimit, { ratePerSecond: 50, burst: 50 })
  assert.equal(c.forward.allowPrivate, ['10.0.0.0/8', '127.0.0.1/32'])
  assert.is(c.http.headersTimeoutMs, 2000)
  try {
    loadConfig({ env: { FORWARD_ALLOW_PRIVATE: 'sometimes' } })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /FORWARD_ALLOW_PRIVATE must be true, false, or a comma-separated CIDR list/)
  }
})

Load('an empty scrub list and a body limit past 1 GiB are refused naming the key', () => {
  // an empty list would have replaced the default one, and credentials would have been stored
  assert.match(failure(() => loadConfig({ env: { INGEST_SCRUB_HEADERS: ' , ' } })).message, /^INGEST_SCRUB_HEADERS must be at least one header name or pattern; leave it unset for the default list/)
  assert.match(failure(() => loadConfig({ env: { INGEST_MAX_BODY: '2GiB', INGEST_MAX_INFLIGHT_BYTES: '8GiB' } })).message, /^INGEST_MAX_BODY must be a size of at most 1GiB/)
  assert.is(loadConfig({ env: { INGEST_MAX_BODY: '1GiB', INGEST_MAX_INFLIGHT_BYTES: '2GiB' } }).http.maxBodyBytes, 1024 ** 3)
})

Load('an ingest burst without an ingest rate is refused naming both keys, not ignored with no limit applied', () => {
  const err = failure(() => loadConfig({ env: { INGEST_RATE_BURST: '100' } }))
  assert.is(err.code, 'CONFIG_INVALID')
  assert.match(err.message, /^INGEST_RATE_BURST is set without INGEST_RATE_LIMIT, so no ingest limit would apply; /)
  const file = yamlFile('http: { rate_burst: 100 }\n')
  assert.match(failure(() => loadConfig({ env: {}, file })).message, /: http\.rate_burst is set without INGEST_RATE_LIMIT/)
  assert.equal(loadConfig({ env: { INGEST_RATE_LIMIT: '10', INGEST_RATE_BURST: '100' } }).http.rateLimit, { ratePerSecond: 10, burst: 100 })
})

Load('a request timeout shorter than the headers timeout is refused naming both keys, not left for the listener to throw', () => {
  // Node's http server refuses headersTimeout > requestTimeout with its own message, naming neither key
  for (const [env, message] of [
    [{ HTTP_REQUEST_TIMEOUT: '5s' }, /^HTTP_REQUEST_TIMEOUT must be at least HTTP_HEADERS_TIMEOUT \(10s\); got 5s; raise it or lower HTTP_HEADERS_TIMEOUT$/],
    [{ HTTP_HEADERS_TIMEOUT: '1m' }, /^HTTP_REQUEST_TIMEOUT must be at least HTTP_HEADERS_TIMEOUT \(1m\); got 30s; raise it or lower HTTP_HEADERS_TIMEOUT$/],
  ] as const) {
    const err = failure(() => loadConfig({ env }))
    assert.is(err.code, 'CONFIG_INVALID')
    assert.match(err.message, message)
  }
  assert.equal([loadConfig({ env: { HTTP_REQUEST_TIMEOUT: '10s' } }).http.requestTimeoutMs, loadConfig({ env: {} }).http.headersTimeoutMs], [10_000, 10_000])
})

Load('a timer duration past 24 days is refused naming the key, where setTimeout would fire it at once', () => {
  // over 2^31-1 ms Node sets a timer to 1 ms: FORWARD_TIMEOUT=30d timed every forward out at once,
  // WORKER_SHUTDOWN_TIMEOUT=30d stopped without draining, WORKER_CLAIM_IDLE=400d refreshed claims every 1 ms
  for (const key of ['FORWARD_TIMEOUT', 'WORKER_SHUTDOWN_TIMEOUT', 'WORKER_CLAIM_IDLE']) {
    const err = failure(() => loadConfig({ env: { [key]: '30d' } }))
    assert.is(err.code, 'CONFIG_INVALID')
    assert.match(err.message, new RegExp(`^${key} must be a duration up to 24d such as "10s" or "1m"; got "30d"$`))
  }
  const c = loadConfig({ env: { FORWARD_TIMEOUT: '24d', WORKER_SHUTDOWN_TIMEOUT: '24d', WORKER_CLAIM_IDLE: '24d' } })
  assert.equal([c.forward.timeoutMs, c.worker.shutdownTimeoutMs, c.worker.claimIdleMs], [24 * 86_400_000, 24 * 86_400_000, 24 * 86_400_000])
})

Load('HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS without HOOKSTREAM_ENCRYPTION_KEY is refused, where every secret saved would be stored in plain text', () => {
  // the old key alone reads every row, so nothing else showed that new and rotated secrets went to the table unencrypted
  const err = failure(() => loadConfig({ env: { HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS: 'the key before the rotation' } }))
  assert.is(err.code, 'CONFIG_INVALID')
  assert.match(err.message, /^HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS is set but HOOKSTREAM_ENCRYPTION_KEY is not/)
  assert.not.match(err.message, /the key before the rotation/)
  const both = loadConfig({ env: { HOOKSTREAM_ENCRYPTION_KEY: 'the key after the rotation', HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS: 'the key before the rotation' } })
  assert.equal([both.encryptionKey, both.encryptionKeyPrevious], ['the key after the rotation', 'the key before the rotation'])
})

Load('the in-flight body budget and the per-client connection cap are read; a budget below twice the max body is refused', () => {
  const c = loadConfig({ env: { INGEST_MAX_INFLIGHT_BYTES: '32MiB', HTTP_MAX_CONNECTIONS_PER_CLIENT: '16' } })
  assert.equal([c.http.maxInflightBytes, c.http.maxConnectionsPerClient], [32 * 1024 * 1024, 16])
  // the default grows with INGEST_MAX_BODY, so a larger body can still be admitted
  assert.is(loadConfig({ env: { INGEST_MAX_BODY: '50MiB' } }).http.maxInflightBytes, 100 * 1024 * 1024)
  for (const [env, message] of [
    [{ INGEST_MAX_INFLIGHT_BYTES: '15MiB' }, /INGEST_MAX_INFLIGHT_BYTES must be at least twice INGEST_MAX_BODY \(10485760 bytes\)/],
    [{ INGEST_MAX_INFLIGHT_BYTES: 'lots' }, /INGEST_MAX_INFLIGHT_BYTES must be a size/],
    [{ HTTP_MAX_CONNECTIONS_PER_CLIENT: '0' }, /HTTP_MAX_CONNECTIONS_PER_CLIENT must be an integer from 1/],
  ] as const) {
    try {
      loadConfig({ env })
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, message)
    }
  }
})

Load('scale-out: no cluster and one partition by default; cluster nodes, partitions, key, assignment and order are read', () => {
  const d = loadConfig({ env: {} })
  assert.equal(d.scale, { partitions: 1, partitionKey: ['tenant_id', 'repository'] })
  const c = loadConfig({ env: {
    REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7000', STREAM_PARTITIONS: '8', STREAM_PARTITION_KEY: 'tenant',
    WORKER_PARTITIONS: '0-2,6', WORKER_ORDER_BY: 'repository',
  } })
  assert.equal(c.scale, {
    clusterNodes: ['10.0.0.1:7000', '10.0.0.2:7000'], partitions: 8, partitionKey: ['tenant_id'],
    workerPartitions: [0, 1, 2, 6], orderBy: ['repository'],
  })
  const f = loadConfig({ env: {}, file: yamlFile('worker:\n  stream:\n    partitions: 4\n    partition_key: repository\n') })
  assert.equal([f.scale.partitions, f.scale.partitionKey], [4, ['repository']])
})

Load('bad scale-out settings name the key and what is expected', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ REDIS_CLUSTER_NODES: 'redis://a:7000' }, /REDIS_CLUSTER_NODES must be a comma-separated list of host:port/],
    [{ STREAM_PARTITIONS: '0' }, /STREAM_PARTITIONS must be an integer from 1 to 1024/],
    [{ STREAM_PARTITION_KEY: 'branch' }, /STREAM_PARTITION_KEY must be a comma-separated list of tenant, repository, tool, event_type/],
    [{ STREAM_PARTITIONS: '4', WORKER_PARTITIONS: '2-5' }, /WORKER_PARTITIONS must be partition numbers or ranges from 0 to 3/],
    [{ WORKER_ORDER_BY: 'sha' }, /WORKER_ORDER_BY must be a comma-separated list/],
  ]
  for (const [env, message] of cases) assert.match(failure(() => loadConfig({ env })).message, message)
})

Load.run()
