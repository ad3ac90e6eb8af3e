import { SpanKind, trace, type Span } from '@opentelemetry/api'
import type { Envelope, Outcome } from '../core/envelope.js'
import type { PipelineError } from '../core/errors.js'
import { MessagingOperation, SpanAttributes, SpanNames } from './attributes.js'
import { endEventSpan, spanContext, startEventSpan } from './event-spans.js'
import { eventLogger, type Logger } from './logger.js'
import type { DlqRetryStatus, Metrics, ProcessedStatus } from './metrics.js'

/** What a pipeline (or ingest) records; pass the objects the service created once. Everything is optional. */
export interface TelemetryOptions {
  /** The `webhook_*` metrics (createMetrics). Without it nothing is counted. */
  readonly metrics?: Metrics
  /** The service's pino logger (createLogger); warnings only during normal operation, per-event lines at debug. */
  readonly logger?: Logger
  /**
   * Create spans: pass `startTracing(…).enabled`. Off means no span work at all (the stored traceparent still
   * passes through to forwards and logs). @defaultValue false
   */
  readonly tracing?: boolean
}

/** Options of `pipelineTelemetry`. */
export interface PipelineTelemetryOptions extends TelemetryOptions {
  /** The consumer group, for `messaging.consumer.group.name`. */
  readonly group: string
}

/** The hooks a pipeline calls; `webhookPipeline({ telemetry })` wires them for you. */
export interface PipelineTelemetry {
  /** Whether steps should record their spans. */
  readonly tracing: boolean
  /** An envelope was created from a read entry: counts it as received and starts its `webhook.process` span. */
  begin<E extends Envelope>(env: E): E
  /** An envelope left the settle step: counts its outcome and duration, ends its process span. */
  settled(env: Envelope): void
  retry(env: Envelope, attempt: number, failure: PipelineError): void
  /** A destination's Retry-After was cut to the pipeline's maximum. */
  retryAfterCapped(): void
  deadLettered(env: Envelope, failure: PipelineError): void
  dlqResolved(count: number): void
  /** DLQ rows took a status change (`toDLQ`'s `onStatusChange`: rows that became failed). */
  dlqStatusChange(change: DlqRetryStatus, count: number): void
  hold(held: boolean, err?: Error): void
  sourceError(err: Error): void
  closed(result: { readonly drained: boolean; readonly unsettled: number }): void
  /** For `fromRedisStream({ exposeInFlight })`: `webhook_in_flight` reads the source's count at scrape time until `closed`. */
  exposeInFlight(read: () => number): void
}

const STATUS: Record<Outcome, ProcessedStatus> = {
  stored: 'stored', transformed: 'transformed', forwarded: 'forwarded', duplicate: 'duplicate',
  dead_lettered: 'dead_lettered', parked: 'retry_scheduled', processed: 'processed',
}

const traceIdOf = (env: Envelope) => trace.getSpanContext(env.trace)?.traceId

/**
 * Turns the pipeline's hooks into metrics, spans and logs. Per event it costs two counter updates and one
 * histogram observation (pre-aggregated Map lookups); with `tracing` a span per step; logs only at debug
 * unless something is wrong: a dead-lettered event (warn, `event_id`, `trace_id`, `code`), a hold while
 * PostgreSQL/Redis is down (one warn per outage), a source error (warn), a shutdown that left events unsettled.
 *
 * @example
 * const t = pipelineTelemetry({ metrics, logger, tracing: true, group: 'webhook_workers' })
 * fromRedisStream({ …, exposeInFlight: t.exposeInFlight }).pipe(map((m) => t.begin(toEnvelope(m))), …, settle(), tap(t.settled))
 */
export function pipelineTelemetry(options: PipelineTelemetryOptions): PipelineTelemetry {
  const { metrics, logger } = options
  const tracing = options.tracing ?? false
  let holding = 0
  const untrack: (() => void)[] = []

  const warnAbout = (env: Envelope, fields: Record<string, unknown>, message: string) => {
    if (!logger) return
    const { event } = env.message
    eventLogger(logger, { eventId: event.id, traceId: traceIdOf(env), toolId: event.tool_id }).warn(fields, message)
  }

  return {
    tracing,
    begin(env) {
      const { event } = env.message
      metrics?.received(event.event_type, event.tool_id)
      if (!tracing) return env
      const span = startEventSpan(SpanNames.PROCESS, env, SpanKind.CONSUMER, {
        [SpanAttributes.MESSAGING_OPERATION_TYPE]: MessagingOperation.PROCESS,
        [SpanAttributes.MESSAGING_CONSUMER_GROUP_NAME]: options.group,
        [SpanAttributes.EVENT_DELIVERY_COUNT]: env.message.deliveryCount,
      })
      return { ...env, trace: spanContext(env.trace, span) }
    },
    settled(env) {
      const { event, readAtMs } = env.message
      const status = env.outcome ? STATUS[env.outcome] : undefined
      const seconds = (Date.now() - readAtMs) / 1000
      if (status) metrics?.processed(event.event_type, event.tool_id, status, seconds)
      if (tracing) {
        const span: Span | undefined = trace.getSpan(env.trace)
        if (span) {
          span.setAttribute(SpanAttributes.EVENT_OUTCOME, status ?? 'unsettled')
          endEventSpan(span, env.outcome === 'dead_lettered' || !status ? env.failure : undefined)
        }
      }
      if (logger?.isLevelEnabled('debug')) {
        eventLogger(logger, { eventId: event.id, traceId: traceIdOf(env), toolId: event.tool_id })
          .debug({ outcome: status ?? 'unsettled', duration_ms: Math.round(seconds * 1000) }, 'event settled')
      }
    },
    retry(env, attempt, failure) {
      metrics?.retry(attempt, failure.code)
      if (tracing) trace.getSpan(env.trace)?.addEvent('retry', { [SpanAttributes.STEP_ATTEMPT]: attempt, [SpanAttributes.ERROR_CODE]: failure.code })
      if (logger?.isLevelEnabled('debug')) {
        eventLogger(logger, { eventId: env.message.event.id, traceId: traceIdOf(env), toolId: env.message.event.tool_id })
          .debug({ attempt, code: failure.code }, 'step failed; retrying')
      }
    },
    retryAfterCapped() {
      metrics?.retryAfterCapped()
    },
    deadLettered(env, failure) {
      metrics?.deadLettered(env.message.event.event_type, failure.code, env.message.event.tool_id)
      const what = failure.code === 'POISON' ? 'poison entry dead-lettered'
        : env.message.decodeError ? 'undecodable entry dead-lettered' : 'event dead-lettered'
      warnAbout(env, { code: failure.code, kind: failure.kind, stream_id: env.message.streamId, error: failure.message }, what)
    },
    dlqResolved(count) {
      metrics?.dlqRetry('resolved', count)
    },
    dlqStatusChange(change, count) {
      metrics?.dlqRetry(change, count)
    },
    hold(held, err) {
      // every held batch reports; one warning per outage is enough
      if (held) {
        if (holding++ === 0) logger?.warn({ err }, 'infrastructure down (PostgreSQL or Redis): holding events unacked until it answers')
      } else if (holding > 0 && --holding === 0) {
        logger?.info('infrastructure answers again: events flow')
      }
    },
    sourceError(err) {
      logger?.warn({ err }, 'stream source error; recovering')
    },
    closed(result) {
      for (const stop of untrack.splice(0)) stop()
      if (result.drained) logger?.info('stream source closed; every event was settled')
      else logger?.warn({ unsettled: result.unsettled }, 'stream source closed with unsettled events; they stay pending and are redelivered')
    },
    exposeInFlight(read) {
      if (metrics) untrack.push(metrics.trackInFlight(read))
    },
  }
}
