// hookstream's public API: the core types, the source, the operators, the sinks and the declared pipelines.

export { PipelineError, ConfigError, isPipelineError, type FailureKind } from './core/errors.js'
export { validateStreamEvent, decodeStreamEvent, type StreamEvent } from './core/event.js'
export { toEnvelope, isDone, contextFromTraceparent, type Envelope, type StreamMessage, type Outcome } from './core/envelope.js'
export {
  parseTool, toolToJSON, DEFAULT_RETRY_POLICY, PROVIDERS, PROCESSING_MODES,
  type ToolConfig, type ToolInput, type ToolLookup, type RetryPolicy, type Provider, type ProcessingMode,
} from './core/tool.js'
export { parseDuration, formatDuration } from './core/duration.js'
export { backoffDelayMs, mayRetry } from './core/backoff.js'
export { DEFAULT_DLQ_POLICY, dlqSchedule, type DlqPolicy } from './core/dlq-policy.js'

export { fromRedisStream, type FromRedisStreamOptions } from './sources/from-redis-stream.js'
export { StreamClient, type StreamInfo, type GroupInfo, type ConsumerInfo, type AddOptions } from './sources/stream-client.js'
export { streamKeys, DEFAULT_KEYS, type StreamKeys } from './sources/keys.js'
export { parkInRedis, startDelayedRetries, type DelayedRetriesOptions } from './sources/delayed-retries.js'
export { StreamPartitions, PartitionedStreamClient, partitionFor, partitionKeys, DEFAULT_PARTITION_KEY } from './sources/partitions.js'

export { batch, type BatchOptions } from './operators/batch.js'
export { orderByKey, type OrderByKeyOptions } from './operators/order-by-key.js'
export { holdWhileDown, type HoldOptions } from './operators/hold.js'
export { poisonGuard, type PoisonGuardOptions } from './operators/poison-guard.js'
export { dedupe, type DedupeOptions } from './operators/dedupe.js'
export { extractToolConfig, type ExtractToolConfigOptions } from './operators/extract-tool-config.js'
export { transform, type TransformOptions } from './operators/transform.js'
export { store, type StoreOptions } from './operators/store.js'
export { forwardStep, type ForwardStepOptions } from './operators/forward.js'
export { retryBackoff, type RetryBackoffOptions } from './operators/retry-backoff.js'
export { markForwarded, type MarkForwardedOptions } from './operators/mark-forwarded.js'
export { resolveDLQ, type ResolveDLQOptions } from './operators/resolve-dlq.js'
export { toDLQ, type ToDLQOptions } from './operators/to-dlq.js'

export type { Sink } from './sinks/sink.js'
export { PostgresSink, type EventRow } from './sinks/postgres.js'
export { ForwardSink, signWebhook, type ForwardItem, type ForwardSinkOptions } from './sinks/forward.js'
export { settle, type SettleOptions } from './sinks/settle.js'

export { webhookPipeline, type WebhookPipelineOptions, type WebhookEnvelope } from './pipelines/webhook.js'
export { defineWorker, DEFAULT_COMMAND_RETRY, type CommandContext, type WorkerDefinition, type WorkerDefinitionInput } from './pipelines/command-worker.js'
export { createApp, type CommandApp, type CommandAppOptions } from './pipelines/command-app.js'
export { executeCommand, commandDlqStream, DEFAULT_COMMAND_STREAM } from './pipelines/command-log.js'

export { createDb, isDatabaseUnavailable, type Db, type Database } from './db/database.js'
export { migrateToLatest } from './db/migrate.js'
export { ToolStore } from './db/tool-store.js'
export { ToolRegistry } from './db/tool-registry.js'
export { loadConfig, type Config } from './config/load-config.js'
export { createIngestHandler, type IngestOptions } from './http/ingest.js'
export { createRouter, startHttpServer } from './http/server.js'
export { createHealth, startHealthServer } from './http/health.js'
export { createMetrics, type Metrics } from './observability/metrics.js'
export { createLogger } from './observability/logger.js'
export { startTracing } from './observability/tracing.js'
