import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/load-config.js'
import { describeConfig } from '../../src/config/describe-config.js'

const dir = mkdtempSync(join(tmpdir(), 'hookstream-seed-'))
function failure(env: Record<string, string>): Error {
  try {
    loadConfig({ env })
  } catch (err) {
    return err as Error
  }
  throw new Error('expected loadConfig to throw')
}

const Seed = suite('seed settings')
Seed.after(() => rmSync(dir, { recursive: true, force: true }))

Seed('with nothing set the processing limit is 5m and the DLQ keeps 100000 entries for 168h, re-queued after 1m, 10m, 1h for 3 rounds', () => {
  const c = loadConfig({ env: {} })
  assert.is(c.processingTimeoutMs, 300_000)
  assert.equal(c.dlq, { maxLen: 100_000, retentionMs: 168 * 3_600_000, policy: { delaysMs: [60_000, 600_000, 3_600_000], maxRounds: 3 } })
  assert.equal(c.redisOptions, { tls: false })
})

Seed('environment variables set the processing limit, the DLQ limits, the retry schedule and the Redis options', () => {
  const c = loadConfig({ env: {
    WORKER_PROCESSING_TIMEOUT: '90s', DLQ_MAX_LEN: '5000', DLQ_RETENTION: '48h', DLQ_RETRY_SCHEDULE: '30s, 5m', DLQ_MAX_ROUNDS: '5',
    REDIS_URL: 'redis://redis:6379', REDIS_TLS_ENABLED: 'true', REDIS_PASSWORD: 'pa55-word', REDIS_DB: '3',
  } })
  assert.is(c.processingTimeoutMs, 90_000)
  assert.equal(c.dlq, { maxLen: 5000, retentionMs: 48 * 3_600_000, policy: { delaysMs: [30_000, 300_000], maxRounds: 5 } })
  assert.equal(c.redisOptions, { tls: true, password: 'pa55-word', db: 3 })
  const described = describeConfig(c)
  assert.match(described, /dlq +max_len 5000, retention 2d, re-queue after 30s,5m for 5 rounds/)
  assert.not.match(described, /pa55-word/)
})

Seed('the YAML file sets the same keys under worker.dlq, worker.processing and worker.redis', () => {
  const path = join(dir, 'seed.yaml')
  writeFileSync(path, [
    'worker:',
    '  redis: { url: "redis://r:6379", tls_enabled: false, password: from-file, db: 2 }',
    '  processing: { processing_timeout: 2m }',
    '  dlq: { max_len: 10, retention: 1h, retry_schedule: "1m,2m", max_rounds: 0 }',
  ].join('\n'))
  const c = loadConfig({ env: {}, file: path })
  assert.is(c.processingTimeoutMs, 120_000)
  assert.equal(c.dlq, { maxLen: 10, retentionMs: 3_600_000, policy: { delaysMs: [60_000, 120_000], maxRounds: 0 } })
  assert.equal(c.redisOptions, { tls: false, password: 'from-file', db: 2 })
})

Seed('a DLQ retention past 100 years is refused, where its cutoff left PostgreSQL\'s range and every purge and DLQ stream trim failed', () => {
  // 10000000d put the purge's cutoff in 25354 BC: "timestamp out of range" every minute, and the DLQ stream's
  // MAXLEN and MINID trims after the purge never ran
  assert.match(failure({ DLQ_RETENTION: '10000000d' }).message, /^DLQ_RETENTION must be a duration from 1m to 36500d \(100 years\) such as "168h" or "30d"; got "10000000d"$/)
  assert.is(loadConfig({ env: { DLQ_RETENTION: '36500d' } }).dlq.retentionMs, 36_500 * 86_400_000)
})

Seed('bad values stop startup with a message naming the key and what is expected, never the password', () => {
  assert.match(failure({ WORKER_PROCESSING_TIMEOUT: 'forever' }).message, /^WORKER_PROCESSING_TIMEOUT must be a duration such as "24h" or "90m"; got "forever"/)
  assert.match(failure({ WORKER_PROCESSING_TIMEOUT: '30d' }).message, /^WORKER_PROCESSING_TIMEOUT must be a duration up to 24d/)
  assert.match(failure({ DLQ_MAX_LEN: '0' }).message, /^DLQ_MAX_LEN must be an integer from 1 to 1000000000; got "0"/)
  assert.match(failure({ DLQ_RETENTION: '30s' }).message, /^DLQ_RETENTION must be a duration/)
  assert.match(failure({ DLQ_RETRY_SCHEDULE: '1m,,1h' }).message, /^DLQ_RETRY_SCHEDULE must be a comma-separated list of 1–20 durations of at least 1s such as "1m,10m,1h"; got "1m,,1h"/)
  assert.match(failure({ DLQ_RETRY_SCHEDULE: '100ms' }).message, /^DLQ_RETRY_SCHEDULE must be/)
  assert.match(failure({ DLQ_MAX_ROUNDS: '101' }).message, /^DLQ_MAX_ROUNDS must be an integer from 0 to 100/)
  assert.match(failure({ REDIS_TLS_ENABLED: 'maybe' }).message, /^REDIS_TLS_ENABLED must be true or false; got "maybe"/)
  assert.match(failure({ REDIS_DB: '-1' }).message, /^REDIS_DB must be an integer from 0 to 9999/)
  const err = failure({ REDIS_PASSWORD: ' ', REDIS_DB: 'x' })
  assert.not.match(err.message, /REDIS_PASSWORD/)
})

Seed.run()
