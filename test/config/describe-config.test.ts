import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { describeConfig, maskUrl } from '../../src/config/describe-config.js'
import { loadConfig } from '../../src/config/load-config.js'
import { readFileSync } from 'node:fs'

const Describe = suite('describeConfig')

Describe('masks URL passwords and never prints tokens or keys', () => {
  const config = loadConfig({ env: {
    REDIS_URL: 'redis://:redis-pass-123@cache:6379/0', DATABASE_HOST: 'db', DATABASE_USER: 'app', DATABASE_PASSWORD: 'db-pass-456',
    ADMIN_TOKEN: 'admin-token-789-abcdefgh', HOOKSTREAM_ENCRYPTION_KEY: 'enc-key-000-abcdefgh',
  } })
  const text = describeConfig(config)
  for (const secret of ['redis-pass-123', 'db-pass-456', 'admin-token-789', 'enc-key-000']) assert.not.match(text, secret)
  assert.match(text, 'redis://:****@cache:6379/0')
  assert.match(text, 'postgres://app:****@db:5432/hookstream')
  assert.match(text, /admin token\s+set/)
  assert.match(text, /http\s+0\.0\.0\.0:8080 \(max body 10485760 bytes, bodies in flight 67108864 bytes, max JSON depth 512, max connections 1024 \(64 per client\), headers timeout \S+, request timeout \S+\)/)
})

Describe('shows embedded servers when none are configured', () => {
  const text = describeConfig(loadConfig({ env: {} }))
  assert.match(text, /redis\s+embedded \(\.\/\.hookstream\/redis\)/)
  assert.match(text, /database\s+embedded \(\.\/\.hookstream\/pgdata\)/)
  assert.match(text, /admin token\s+not set/)
})

Describe('shows the metric label budgets', () => {
  assert.match(describeConfig(loadConfig({ env: {} })), /metric labels\s+50 event types per tool, 1000 in total/)
  assert.match(describeConfig(loadConfig({ env: { METRICS_MAX_EVENT_TYPES_PER_TOOL: '8' } })), /metric labels\s+8 event types per tool/)
})

Describe('shows how often the stream is trimmed and how many entries are kept, or that trimming is off', () => {
  assert.match(describeConfig(loadConfig({ env: {} })), /stream trim\s+every 10s, keep 0 newest/)
  assert.match(describeConfig(loadConfig({ env: { STREAM_TRIM_INTERVAL: '250ms', STREAM_TRIM_KEEP: '500' } })), /stream trim\s+every 250ms, keep 500 newest/)
  assert.match(describeConfig(loadConfig({ env: { STREAM_TRIM_INTERVAL: 'off' } })), /stream trim\s+off\n/)
})

Describe('shows the scale-out settings: cluster, partitions, the worker\'s share, ordering, ingest limit and the SSRF guard', () => {
  const plain = describeConfig(loadConfig({ env: {} }))
  assert.match(plain, /partitions\s+1 \(one stream\)/)
  assert.match(plain, /order by\s+\(none: full concurrency\)/)
  assert.match(plain, /ingest limit\s+\(none\)/)
  assert.match(plain, /forward\s+timeout \S+, private destinations refused/)
  assert.match(plain, /private destinations refused, breaker opens after 5 failures in a row, probes after 10s/)
  const text = describeConfig(loadConfig({ env: {
    REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000', STREAM_PARTITIONS: '8', WORKER_PARTITIONS: '0-3', WORKER_ORDER_BY: 'repository',
    INGEST_RATE_LIMIT: '50', FORWARD_ALLOW_PRIVATE: '10.0.0.0/8',
  } }))
  assert.match(text, /redis\s+cluster 10\.0\.0\.1:7000,10\.0\.0\.2:7000/)
  assert.match(text, /partitions\s+8 by tenant_id,repository, this worker reads 0,1,2,3/)
  assert.match(text, /order by\s+repository/)
  assert.match(text, /ingest limit\s+50\/s per tool, burst 50/)
  assert.match(text, /private destinations allowed only in 10\.0\.0\.0\/8/)
})

Describe('maskUrl hides the password, and an unparseable URL entirely', () => {
  assert.is(maskUrl('postgres://app:s3cret@db:5432/x'), 'postgres://app:****@db:5432/x')
  assert.is(maskUrl('redis://cache:6379'), 'redis://cache:6379')
  assert.is(maskUrl('not a url s3cret'), '(unparseable URL hidden)')
})

// One valid value other than the default for every variable loadConfig reads: `hookstream config check` prints
// the effective configuration, so each of them must show in it (secrets as "set", never their value).
const NON_DEFAULT: Readonly<Record<string, string>> = {
  REDIS_URL: 'redis://cache:6379', REDIS_ADDR: 'cache:6380', REDIS_CLUSTER_NODES: '10.0.0.1:7000', REDIS_REQUIRE_DURABLE: 'true',
  REDIS_TLS_ENABLED: 'true', REDIS_USERNAME: 'app-user', REDIS_PASSWORD: 'redis-pass-never-shown', REDIS_DB: '3',
  DATABASE_URL: 'postgres://app@db:5432/hooks', DATABASE_HOST: 'db', DATABASE_PORT: '6543', DATABASE_NAME: 'hooks', DATABASE_USER: 'app',
  DATABASE_PASSWORD: 'db-pass-never-shown', DATABASE_SSL_MODE: 'require',
  STREAM_PREFIX: 'tenant1:', STREAM_NAME: 'events', STREAM_DLQ_NAME: 'events_dlq', STREAM_GROUP: 'workers', STREAM_MAXLEN: '5000',
  STREAM_TRIM_INTERVAL: '30s', STREAM_TRIM_KEEP: '7', STREAM_PARTITIONS: '4', STREAM_PARTITION_KEY: 'tool', WORKER_PARTITIONS: '0-1',
  WORKER_ORDER_BY: 'tenant', WORKER_CONSUMER_NAME: 'worker-a', WORKER_IDEMPOTENCY_TTL: '36h', WORKER_BATCH_SIZE: '250',
  WORKER_MAX_IN_FLIGHT: '777', WORKER_CONCURRENCY: '5', WORKER_BLOCK_TIMEOUT: '3s', WORKER_READ_LINGER: '25ms', WORKER_CLAIM_IDLE: '90s',
  WORKER_MAX_DELIVERIES: '4', WORKER_SHUTDOWN_TIMEOUT: '45s', WORKER_PROCESSING_TIMEOUT: '7m', WORKER_STALL_TIMEOUT: '11m',
  DLQ_MAX_LEN: '5555', DLQ_RETENTION: '72h', DLQ_RETRY_SCHEDULE: '2m,20m', DLQ_MAX_ROUNDS: '6',
  EVENT_RETENTION: '90d', AUDIT_RETENTION: '400d', DELIVERY_LOG_RETENTION: '14d', RETENTION_BATCH: '333',
  REPLAY_MAX_EVENTS: '5000', REPLAY_CONFIRM_OVER: '25', COMMANDS_STREAM: 'cmds',
  HTTP_ADDR: ':9090', INGEST_MAX_BODY: '2MiB', INGEST_MAX_INFLIGHT_BYTES: '96MiB', INGEST_MAX_JSON_DEPTH: '64', HTTP_MAX_CONNECTIONS: '2048',
  HTTP_MAX_CONNECTIONS_PER_CLIENT: '32', HTTP_HEADERS_TIMEOUT: '5s', HTTP_REQUEST_TIMEOUT: '20s', INGEST_RATE_LIMIT: '40',
  INGEST_SCRUB_HEADERS: 'authorization,x-internal-*',
  FORWARD_ALLOW_PRIVATE: 'true', FORWARD_TIMEOUT: '4s', FORWARD_BREAKER_FAILURES: '9', FORWARD_BREAKER_COOL_DOWN: '15s', FORWARD_MAX_RETRY_AFTER: '20m',
  HEALTH_ENDPOINT: ':9099', METRICS_MAX_EVENT_TYPES_PER_TOOL: '20', METRICS_MAX_EVENT_TYPES: '3000',
  ADMIN_TOKEN: 'admin-token-never-shown-0123', ADMIN_ADDR: '127.0.0.1:9091', ADMIN_LOGIN_MAX_FAILURES: '8', ADMIN_LOGIN_WINDOW: '2m',
  HOOKSTREAM_ENCRYPTION_KEY: 'enc-key-never-shown-0123', LOG_LEVEL: 'debug', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318',
}
// settings that need another one beside them to be accepted
const WITH: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  INGEST_RATE_BURST: { INGEST_RATE_LIMIT: '40' }, HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS: { HOOKSTREAM_ENCRYPTION_KEY: 'enc-key-never-shown-0123' },
  DATABASE_PORT: { DATABASE_HOST: 'db' }, DATABASE_NAME: { DATABASE_HOST: 'db' }, DATABASE_SSL_MODE: { DATABASE_HOST: 'db' },
  // a user name without a password is masked like a token in a URL
  DATABASE_USER: { DATABASE_HOST: 'db', DATABASE_PASSWORD: 'db-pass-never-shown' }, STREAM_PARTITION_KEY: { STREAM_PARTITIONS: '4' },
  DATABASE_PASSWORD: { DATABASE_HOST: 'db' }, WORKER_PARTITIONS: { STREAM_PARTITIONS: '4' },
}
const EXTRA: Readonly<Record<string, string>> = { INGEST_RATE_BURST: '90', HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS: 'old-enc-key-never-shown-0123' }

Describe('config check shows every setting loadConfig reads: each variable set to another value changes the summary', () => {
  const sources = ['load-config.ts', 'seed-settings.ts', 'admin-settings.ts']
    .map((f) => readFileSync(new URL(`../../src/config/${f}`, import.meta.url), 'utf8')).join('\n')
  const read = new Set([...sources.matchAll(/env: '([A-Z0-9_]+)'|opt\('([A-Z0-9_]+)'/g)].map((m) => (m[1] ?? m[2]) as string))
  const values = { ...NON_DEFAULT, ...EXTRA }
  assert.equal([...read].filter((k) => values[k] === undefined), [], 'every variable has a test value here')
  const unchanged: string[] = []
  for (const key of read) {
    const base = { ...WITH[key] }
    const before = describeConfig(loadConfig({ env: base }))
    const after = describeConfig(loadConfig({ env: { ...base, [key]: values[key] as string } }))
    if (before === after) unchanged.push(key)
    for (const secret of ['never-shown']) assert.not.match(after, secret, key)
  }
  assert.equal(unchanged, [], `not shown by config check: ${unchanged.join(', ')}`)
})

Describe.run()
