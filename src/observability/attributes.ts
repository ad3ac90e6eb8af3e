import type { Attributes } from '@opentelemetry/api'
import type { StreamEvent } from '../core/event.js'

/**
 * Span attribute names, defined once: hookstream's own as `hookstream.<entity>.<attr>`, plus the OpenTelemetry
 * messaging and error conventions that tracing backends understand.
 *
 * @example
 * withSpan('hookstream.store', env.trace, { [SpanAttributes.EVENT_ID]: event.id }, (ctx) => store(ctx, env))
 */
export const SpanAttributes = Object.freeze({
  EVENT_ID: 'hookstream.event.id',
  EVENT_TYPE: 'hookstream.event.type',
  TOOL_ID: 'hookstream.tool.id',
  TENANT_ID: 'hookstream.tenant.id',
  /** How many times the DLQ re-enqueued the event (StreamEvent.retry_count). */
  EVENT_RETRY_COUNT: 'hookstream.event.retry_count',
  /** How many times the consumer group delivered the entry. */
  EVENT_DELIVERY_COUNT: 'hookstream.event.delivery_count',
  /** The outcome of processing: one of the `status` values of webhook_events_processed_total. */
  EVENT_OUTCOME: 'hookstream.event.outcome',
  /** Attempt number of a retried step (1 for the first retry). */
  STEP_ATTEMPT: 'hookstream.step.attempt',
  /** The stable error code of a failure (PipelineError.code). */
  ERROR_CODE: 'hookstream.error.code',
  /** OTel: always {@link MESSAGING_SYSTEM} ("redis"). */
  MESSAGING_SYSTEM: 'messaging.system',
  /** OTel: the stream name, e.g. "webhook_events". */
  MESSAGING_DESTINATION_NAME: 'messaging.destination.name',
  /** OTel: the stream entry id, e.g. "1718000000000-0". */
  MESSAGING_MESSAGE_ID: 'messaging.message.id',
  /** OTel: one of {@link MessagingOperation}. */
  MESSAGING_OPERATION_TYPE: 'messaging.operation.type',
  /** OTel: the consumer group, e.g. "webhook_workers". */
  MESSAGING_CONSUMER_GROUP_NAME: 'messaging.consumer.group.name',
  /** OTel: the class of error that ended the operation (we use the error code). */
  ERROR_TYPE: 'error.type',
  /** OTel: how many messages one batch operation (INSERT, DLQ write) handled. */
  MESSAGING_BATCH_MESSAGE_COUNT: 'messaging.batch.message_count',
  /** OTel: "postgresql" on store spans. */
  DB_SYSTEM: 'db.system.name',
  /** OTel: the table a store span writes to. */
  DB_COLLECTION_NAME: 'db.collection.name',
  /** OTel: "INSERT" on store spans. */
  DB_OPERATION_NAME: 'db.operation.name',
  /** OTel: the HTTP method of ingest's request and of a forward. */
  HTTP_REQUEST_METHOD: 'http.request.method',
  /** OTel: the HTTP status code ingest answered, or the destination answered a forward. */
  HTTP_RESPONSE_STATUS_CODE: 'http.response.status_code',
  /** OTel: ingest's route template, "/webhooks/:toolId". */
  HTTP_ROUTE: 'http.route',
} as const)

/**
 * Names of the spans hookstream creates, one trace per event:
 * `webhook.ingest` (SERVER) → `webhook.process` (CONSUMER) → `webhook.store` (CLIENT), `webhook.forward`
 * (CLIENT, one per attempt), `webhook.dlq` (PRODUCER).
 *
 * @example
 * tracer().startSpan(SpanNames.PROCESS, { kind: SpanKind.CONSUMER }, env.trace)
 */
export const SpanNames = Object.freeze({
  INGEST: 'webhook.ingest',
  PROCESS: 'webhook.process',
  STORE: 'webhook.store',
  FORWARD: 'webhook.forward',
  DLQ: 'webhook.dlq',
} as const)

/** The value of `messaging.system` for Redis Streams. */
export const MESSAGING_SYSTEM = 'redis'

/** Values of `messaging.operation.type`. */
export const MessagingOperation = Object.freeze({
  /** ingest's XADD */
  SEND: 'send',
  /** XREADGROUP */
  RECEIVE: 'receive',
  /** running the pipeline steps on one event */
  PROCESS: 'process',
  /** XACK */
  SETTLE: 'settle',
} as const)

/**
 * The attributes every span about one event carries.
 *
 * @example
 * tracer().startSpan('hookstream.process', { attributes: eventAttributes(msg.event, 'webhook_events', msg.streamId) }, env.trace)
 */
export function eventAttributes(event: StreamEvent, stream?: string, streamId?: string): Attributes {
  return {
    [SpanAttributes.EVENT_ID]: event.id,
    [SpanAttributes.EVENT_TYPE]: event.event_type,
    [SpanAttributes.TOOL_ID]: event.tool_id,
    [SpanAttributes.TENANT_ID]: event.tenant_id,
    [SpanAttributes.EVENT_RETRY_COUNT]: event.retry_count,
    [SpanAttributes.MESSAGING_SYSTEM]: MESSAGING_SYSTEM,
    ...(stream ? { [SpanAttributes.MESSAGING_DESTINATION_NAME]: stream } : {}),
    ...(streamId ? { [SpanAttributes.MESSAGING_MESSAGE_ID]: streamId } : {}),
  }
}
