import { formatDuration } from '../core/duration.js'
import { maskUrl } from '../core/mask-url.js'
import type { Config } from './load-config.js'
import type { ListenAddress } from './listen-address.js'

/** The one URL masking (see core/mask-url.ts), re-exported where the configuration summary used to define its own. */
export { maskUrl }

function address(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

/**
 * The settings of `config` as `[name, value]` pairs in a fixed order, with secrets masked (URL passwords as
 * `****`, tokens and keys only as "set"/"not set"). `hookstream config check --json` prints them as an object.
 *
 * @example
 * Object.fromEntries(describeConfigRows(loadConfig()))['database'] // "postgres://app:****@db:5432/hookstream"
 */
export function describeConfigRows(config: Config): [string, string][] {
  const w = config.worker
  const { scale, http, forward } = config
  const rows: [string, string][] = [
    ['config file', config.configFile ?? '(none)'],
    ['redis', scale.clusterNodes ? `cluster ${scale.clusterNodes.join(',')}`
      : config.redis.kind === 'server' ? maskUrl(config.redis.url) : `embedded (${config.redis.dir})`],
    ['database', config.database.kind === 'postgres' ? maskUrl(config.database.url) : `embedded (${config.database.path})`],
    ['stream', `${config.keys.stream} (group ${config.keys.group}, dlq ${config.keys.dlqStream}, max_len ${config.streamMaxLen ?? 'unlimited'})`],
    ['stream trim', w.trimIntervalMs === 0 ? 'off' : `every ${formatDuration(w.trimIntervalMs)}, keep ${w.trimKeep} newest`],
    ['partitions', scale.partitions === 1 ? '1 (one stream)' : `${scale.partitions} by ${scale.partitionKey.join(',')}, ` +
      `this worker reads ${scale.workerPartitions ? scale.workerPartitions.join(',') : 'all'}`],
    ['order by', scale.orderBy ? scale.orderBy.join(',') : '(none: full concurrency)'],
    ['consumer', w.consumerName],
    ['commands stream', config.commandStream],
    ['worker', `batch ${w.batchSize}, max in flight ${w.maxInFlight}, concurrency ${w.concurrency}, block ${formatDuration(w.blockTimeoutMs)}, read linger ${formatDuration(w.readLingerMs)}, ` +
      `claim idle ${formatDuration(w.claimIdleMs)}, max deliveries ${w.maxDeliveries}`],
    ['idempotency ttl', formatDuration(w.idempotencyTtlMs)],
    ['shutdown timeout', formatDuration(w.shutdownTimeoutMs)],
    ['stall timeout', formatDuration(w.stallTimeoutMs)],
    ['processing limit', formatDuration(config.processingTimeoutMs)],
    ['dlq', `max_len ${config.dlq.maxLen}, retention ${formatDuration(config.dlq.retentionMs)}, ` +
      `re-queue after ${config.dlq.policy.delaysMs.map(formatDuration).join(',')} for ${config.dlq.policy.maxRounds} rounds`],
    ['redis options', `tls ${config.redisOptions.tls ? 'on' : 'off'}, user ${config.redisOptions.username ?? '(from URL)'}, ` +
      `password ${config.redisOptions.password ? 'set' : 'not set'}, db ${config.redisOptions.db ?? '(from URL)'}, ` +
      `append-only file ${config.redisRequireDurable ? 'required' : 'not required'}`],
    ['http', `${address(http.addr)} (max body ${http.maxBodyBytes} bytes, bodies in flight ${http.maxInflightBytes} bytes, max JSON depth ${http.maxJsonDepth}, ` +
      `max connections ${http.maxConnections} (${http.maxConnectionsPerClient} per client), ` +
      `headers timeout ${formatDuration(http.headersTimeoutMs)}, request timeout ${formatDuration(http.requestTimeoutMs)})`],
    ['ingest limit', http.rateLimit ? `${http.rateLimit.ratePerSecond}/s per tool, burst ${http.rateLimit.burst}` : '(none)'],
    ['scrub headers', http.scrubHeaders ? http.scrubHeaders.join(',') : '(default list)'],
    ['forward', `timeout ${formatDuration(forward.timeoutMs)}, private destinations ${forward.allowPrivate === true ? 'allowed'
      : forward.allowPrivate === false ? 'refused' : `allowed only in ${forward.allowPrivate.join(',')}`}, ` +
      `breaker opens after ${forward.breakerFailures} failures in a row, probes after ${formatDuration(forward.breakerCoolDownMs)}, ` +
      `Retry-After honoured up to ${formatDuration(forward.maxRetryAfterMs)}`],
    ['health', address(config.health.endpoint)],
    ['retention', `events ${config.retention.eventsMs === undefined ? 'kept forever' : formatDuration(config.retention.eventsMs)}, ` +
      `audit ${config.retention.auditMs === undefined ? 'kept forever' : formatDuration(config.retention.auditMs)}, ` +
      `delivery log ${config.retention.deliveriesMs === undefined ? 'kept forever' : formatDuration(config.retention.deliveriesMs)}, batch ${config.retention.batch}`],
    ['metric labels', `${config.metrics.maxEventTypesPerTool} event types per tool, ${config.metrics.maxEventTypes} in total`],
    ['admin token', config.adminToken ? 'set' : 'not set'],
    ['admin', !config.admin.addr ? 'off (ADMIN_ADDR=off)' : `${address(config.admin.addr)}${config.adminToken ? '' : ' (off: no ADMIN_TOKEN)'}, ` +
      `429 after ${config.admin.loginMaxFailures} failed logins per address in ${formatDuration(config.admin.loginWindowMs)}`],
    ['replay', `at most ${config.admin.replayMaxEvents} events, confirmation over ${config.admin.replayConfirmOver}`],
    ['encryption key', `${config.encryptionKey ? 'set' : 'not set'}${config.encryptionKeyPrevious ? ' (previous key set: rotation under way)' : ''}`],
    ['log level', config.logLevel],
    ['otlp endpoint', config.otlpEndpoint ? maskUrl(config.otlpEndpoint) : '(none)'],
    ['tools', config.tools.length === 0 ? '(none in file)' : config.tools.map((t) => `${t.id} (${t.provider})`).join(', ')],
  ]
  return rows
}

/**
 * A printable summary of the configuration, one `name  value` line per setting, with secrets masked (URL
 * passwords as `****`, tokens and keys only as "set"/"not set"). Safe to log at startup.
 *
 * @example
 * console.log(describeConfig(loadConfig()))
 */
export function describeConfig(config: Config): string {
  return describeConfigRows(config).map(([name, value]) => `${name.padEnd(17)} ${value}`).join('\n')
}
