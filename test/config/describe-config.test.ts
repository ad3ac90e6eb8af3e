import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { describeConfig, maskUrl } from '../../src/config/describe-config.js'
import { loadConfig } from '../../src/config/load-config.js'

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
  assert.match(text, /http\s+0\.0\.0\.0:8080 \(max body 10485760 bytes, bodies in flight 67108864 bytes, max connections 1024 \(64 per client\), headers timeout \S+, request timeout \S+\)/)
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

Describe.run()
