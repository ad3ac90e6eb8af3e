import { SpanKind } from '@opentelemetry/api'
import type { Envelope, StreamMessage } from '../core/envelope.js'
import type { PipelineError } from '../core/errors.js'
import { entryEventJson } from '../core/stream-entry.js'
import type { ToolConfig } from '../core/tool.js'
import { SpanAttributes, SpanNames } from '../observability/attributes.js'
import { endEventSpan, spanContext, startEventSpan } from '../observability/event-spans.js'
import { traceparentOf } from '../observability/tracing.js'
import type { ForwardAttempt, ForwardItem, ForwardSink } from '../sinks/forward.js'

/** Options of `forwardStep`. */
export interface ForwardStepOptions {
  readonly sink: ForwardSink
  /** W3C traceparent to send for an envelope (tracing sets it to the forward span). @defaultValue the entry's own */
  readonly traceparentOf?: (env: Envelope) => string | undefined
  /**
   * Record a `webhook.forward` span (CLIENT, a child of the event's `webhook.process` span) per attempt and send
   * its traceparent to the destination, so the receiver's spans join the event's trace. @defaultValue false
   */
  readonly tracing?: boolean
}

/**
 * The entry's event JSON when it holds exactly the decoded event, to be sent byte for byte; undefined when the
 * source put a re-queued DLQ row's retry count beside it or the producer left `retry_count` out (decoding adds
 * 0): then the event is serialized instead. A v2 entry's header is serialized around its payload text as received.
 *
 * @example
 * sink.write([{ event: env.message.event, tool, eventJson: entryJson(env.message) }])
 */
export function entryJson(message: StreamMessage): string | undefined {
  const json = message.fields.event
  if (json === undefined) return entryEventJson(message.fields, message.event)
  if (json === undefined || message.fields.retry_count !== undefined) return undefined
  return message.event.retry_count !== 0 || json.includes('"retry_count"') ? json : undefined
}

/**
 * A step for `retryBackoff`: POSTs the event to its tool's `forward_url` (signed, Standard Webhooks headers)
 * when the tool is in `store_and_forward` mode, and sets outcome `forwarded`; a failure comes back on the
 * envelope, classified (5xx, 429, timeouts transient; other 4xx permanent). Either way the envelope carries
 * `forwardAttempt` (status, duration, the head of the response body) for the delivery log and metrics. Other
 * modes pass through.
 *
 * @example
 * batches$.pipe(store({ db }), retryBackoff({ step: forwardStep({ sink: new ForwardSink() }) }))
 */
export function forwardStep<E extends Envelope & { readonly tool?: ToolConfig; readonly transformed?: unknown; readonly forwardAttempt?: ForwardAttempt }>(
  options: ForwardStepOptions,
): (env: E, signal?: AbortSignal) => Promise<E> {
  return async (env, signal) => {
    const tool = env.tool
    if (env.failure || env.outcome || !tool || tool.processingMode !== 'store_and_forward') return env
    return sendAttempt(env, options.sink, options.tracing, options.traceparentOf?.(env) ?? env.message.traceparent, (traceparent) => ({
      event: env.message.event, tool,
      ...(env.transformed !== undefined ? { transformed: env.transformed } : { eventJson: entryJson(env.message) }),
      ...(traceparent ? { traceparent } : {}),
    }), signal)
  }
}

/**
 * One attempt of `env` through `sink.deliver`, shared by `forwardStep` and `deliverStep`: with `tracing` inside a
 * `webhook.forward` span (CLIENT, a child of the event's span) whose traceparent the request carries, else with
 * `traceparent`. The envelope comes back with `forwardAttempt` (for the delivery log and metrics) and either its
 * classified `failure` or outcome `forwarded`. `signal` (the attempt's time limit) gives up a request still waiting
 * for a slot.
 *
 * @example
 * return sendAttempt(env, sink, false, env.message.traceparent, (tp) => ({ event: env.message.event, tool, ...(tp ? { traceparent: tp } : {}) }))
 */
export async function sendAttempt<E extends Envelope & { readonly forwardAttempt?: ForwardAttempt }>(env: E, sink: ForwardSink,
  tracing: boolean | undefined, traceparent: string | undefined, item: (traceparent: string | undefined) => ForwardItem, signal?: AbortSignal): Promise<E> {
  const span = tracing ? startEventSpan(SpanNames.FORWARD, env, SpanKind.CLIENT, {
    [SpanAttributes.HTTP_REQUEST_METHOD]: 'POST', [SpanAttributes.STEP_ATTEMPT]: env.attempts + 1,
  }) : undefined
  let forwardAttempt: ForwardAttempt
  try {
    forwardAttempt = await sink.deliver(item((span ? traceparentOf(spanContext(env.trace, span)) : undefined) ?? traceparent), signal)
  } catch (err) {
    if (span) endEventSpan(span, err as Error)
    throw err
  }
  const failure: PipelineError | undefined = forwardAttempt.failure
  if (span) endEventSpan(span, failure)
  return failure ? { ...env, failure, forwardAttempt } : { ...env, outcome: 'forwarded', forwardAttempt }
}
