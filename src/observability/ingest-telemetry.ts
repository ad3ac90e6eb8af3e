import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { contextFromTraceparent } from '../core/envelope.js'
import { MESSAGING_SYSTEM, MessagingOperation, SpanAttributes, SpanNames } from './attributes.js'
import { eventLogger } from './logger.js'
import type { TelemetryOptions } from './pipeline-telemetry.js'
import { traceparentOf, tracer } from './tracing.js'

/** What ingest knows about a request once it answered. */
export interface IngestOutcome {
  /** Set only once the tool was found (else the label is "unknown"). */
  readonly toolId?: string
  readonly eventId?: string
  readonly status: number
  /** `ACCEPTED`, `DUPLICATE`, or the error code of the answer. */
  readonly code: string
  /** The error behind a 5xx answer, for the log line. */
  readonly error?: unknown
}

/** One request's telemetry: the traceparent to store with the entry, and `finish` once the answer is sent. */
export interface IngestRequestTelemetry {
  /** The `webhook.ingest` span's traceparent (tracing on), else the request's own valid one, else undefined. */
  readonly traceparent: string | undefined
  finish(outcome: IngestOutcome): void
}

/** Options of `ingestTelemetry`. */
export interface IngestTelemetryOptions extends TelemetryOptions {
  /** The stream ingest writes to, for `messaging.destination.name`. */
  readonly stream: string
}

/**
 * Metrics, span and log line of each ingest request. With `tracing`, a `webhook.ingest` SERVER span starts when
 * the request arrives (a child of its `traceparent` header, if any) and its own traceparent is what ingest stores
 * with the stream entry; status ERROR only for 5xx (a 4xx is the sender's error: `error.type` = the code).
 * Counts `webhook_ingest_requests_total{tool_id,code}` and `webhook_signature_failures_total{tool_id}` and observes
 * `webhook_ingest_request_duration_seconds{tool_id,code}`; logs 5xx
 * at warn and everything else at debug, with `event_id` and `trace_id`.
 *
 * @example
 * const t = ingestTelemetry({ metrics, logger, tracing: true, stream: 'webhook_events' }).start(req.headers.traceparent)
 * await stream.add(event, { traceparent: t.traceparent }); t.finish({ toolId: tool.id, eventId: event.id, status: 202, code: 'ACCEPTED' })
 */
export function ingestTelemetry(options: IngestTelemetryOptions): { start(incoming: string | undefined): IngestRequestTelemetry } {
  const { metrics, logger, stream } = options
  const tracing = options.tracing ?? false
  return {
    start(incoming) {
      const started = performance.now()
      const span = tracing ? tracer().startSpan(SpanNames.INGEST, {
        kind: SpanKind.SERVER,
        attributes: {
          [SpanAttributes.HTTP_REQUEST_METHOD]: 'POST', [SpanAttributes.HTTP_ROUTE]: '/webhooks/:toolId',
          [SpanAttributes.MESSAGING_SYSTEM]: MESSAGING_SYSTEM, [SpanAttributes.MESSAGING_DESTINATION_NAME]: stream,
          [SpanAttributes.MESSAGING_OPERATION_TYPE]: MessagingOperation.SEND,
        },
      }, contextFromTraceparent(incoming)) : undefined
      const traceparent = span ? traceparentOf(trace.setSpan(ROOT_CONTEXT, span)) : incoming
      return {
        traceparent,
        finish({ toolId, eventId, status, code, error }) {
          if (span) {
            span.setAttribute(SpanAttributes.HTTP_RESPONSE_STATUS_CODE, status)
            if (toolId) span.setAttribute(SpanAttributes.TOOL_ID, toolId)
            if (eventId) span.setAttribute(SpanAttributes.EVENT_ID, eventId)
            if (status >= 400) span.setAttribute(SpanAttributes.ERROR_TYPE, code)
            if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: code })
            span.end()
          }
          if (metrics) {
            const tool = toolId ?? 'unknown'
            metrics.ingest(tool, status, (performance.now() - started) / 1000)
            if (code === 'SIGNATURE_INVALID') metrics.signatureFailure(tool)
          }
          if (logger && (status >= 500 || logger.isLevelEnabled('debug'))) {
            const traceId = traceparent?.slice(3, 35)
            const log = eventId ? eventLogger(logger, { eventId, traceId, ...(toolId ? { toolId } : {}) }) : logger
            const fields = { status, code, ...(toolId && !eventId ? { tool_id: toolId } : {}),
              duration_ms: Math.round(performance.now() - started), ...(error !== undefined ? { err: error } : {}) }
            if (status >= 500) log.warn(fields, 'ingest could not queue the event; answered 5xx so the sender retries')
            else log.debug(fields, 'ingest answered')
          }
        },
      }
    },
  }
}
