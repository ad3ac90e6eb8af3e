import { SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api'
import type { Envelope } from '../core/envelope.js'
import { eventAttributes, SpanAttributes } from './attributes.js'
import { tracer } from './tracing.js'

/**
 * Starts a span about one event as a child of `env.trace` (the event's `webhook.process` span), with the event's
 * attributes (id, type, tool, tenant, retry count, `messaging.system`, stream and entry id) plus `extra`.
 * Call it only when tracing is on: the steps take a `tracing` flag so that "off" does no work at all.
 *
 * @example
 * const span = startEventSpan(SpanNames.STORE, env, SpanKind.CLIENT, { [SpanAttributes.DB_OPERATION_NAME]: 'INSERT' })
 * try { await write(env) } finally { endEventSpan(span, env.failure) }
 */
export function startEventSpan(name: string, env: Envelope, kind: SpanKind = SpanKind.INTERNAL, extra?: Attributes): Span {
  const { event, stream, streamId } = env.message
  const attributes = eventAttributes(event, stream, streamId)
  return tracer().startSpan(name, { kind, attributes: extra ? { ...attributes, ...extra } : attributes }, env.trace)
}

/**
 * The context of `span` under `parent`, to start children from or to read a traceparent with `traceparentOf`.
 *
 * @example
 * const headerValue = traceparentOf(spanContext(env.trace, span))
 */
export function spanContext(parent: Context, span: Span): Context {
  return trace.setSpan(parent, span)
}

/**
 * Ends `span`; a `failure` (an error with a stable `code`, such as PipelineError) sets status ERROR,
 * `error.type` and `hookstream.error.code` first. The message goes into the status, never into attributes.
 *
 * @example
 * endEventSpan(span, result.failure)
 */
export function endEventSpan(span: Span, failure?: { readonly code?: string; readonly message: string; readonly name?: string }): void {
  if (failure && span.isRecording()) {
    const type = failure.code || failure.name || 'Error'
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message })
    span.setAttribute(SpanAttributes.ERROR_TYPE, type)
    if (failure.code) span.setAttribute(SpanAttributes.ERROR_CODE, failure.code)
  }
  span.end()
}
