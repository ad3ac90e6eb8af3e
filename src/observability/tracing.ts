import {
  context, isSpanContextValid, SpanKind, SpanStatusCode, trace,
  type Attributes, type Context, type Span, type Tracer,
} from '@opentelemetry/api'
import { SpanAttributes } from './attributes.js'

// Only @opentelemetry/api here: the library never loads the SDK. The service entry point sets it up with
// startTracing (start-tracing.ts); without it every span is the API's no-op span.

/** The tracer name every hookstream span is created with. */
export const TRACER_NAME = 'hookstream'

/**
 * hookstream's tracer (`trace.getTracer('hookstream')`); a no-op tracer until `startTracing` registers a provider.
 *
 * @example
 * const span = tracer().startSpan('hookstream.ingest', { kind: SpanKind.SERVER })
 */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME)
}

/**
 * Runs `fn` inside a new span that is a child of `parent` (never of whatever context happens to be active, so pass
 * `ROOT_CONTEXT` to start a trace). The span ends when `fn` returns or its promise settles; a throw or rejection
 * records the exception, sets status ERROR and `error.type` (the error's `code` when it has one), and is rethrown.
 * `fn` gets the span's context (pass it to child spans and `traceparentOf`) and the span.
 *
 * @example
 * await withSpan('hookstream.store', env.trace, { [SpanAttributes.EVENT_ID]: id }, (ctx) => sink.write(env), SpanKind.CLIENT)
 */
export function withSpan<T>(
  name: string,
  parent: Context,
  attributes: Attributes,
  fn: (ctx: Context, span: Span) => T,
  kind: SpanKind = SpanKind.INTERNAL,
): T {
  const span = tracer().startSpan(name, { kind, attributes }, parent)
  const ctx = trace.setSpan(parent, span)
  let result: T
  try {
    result = context.with(ctx, fn, undefined, ctx, span)
  } catch (err) {
    fail(span, err)
    span.end()
    throw err
  }
  if (isPromiseLike(result)) {
    return result.then(
      (value) => { span.end(); return value },
      (err: unknown) => { fail(span, err); span.end(); throw err },
    ) as T
  }
  span.end()
  return result
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

function fail(span: Span, err: unknown): void {
  if (!span.isRecording()) return
  const error = err instanceof Error ? err : new Error(String(err))
  span.recordException(error)
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message })
  const code = (err as { code?: unknown } | null)?.code
  const type = typeof code === 'string' && code !== '' ? code : error.name
  span.setAttribute(SpanAttributes.ERROR_TYPE, type)
  if (typeof code === 'string' && code !== '') span.setAttribute(SpanAttributes.ERROR_CODE, code)
}

/**
 * The W3C `traceparent` header value of the span in `ctx` (store it with a stream entry, send it to a forward
 * destination), or undefined when `ctx` holds no valid span. Works without a registered provider: a remote
 * parent read with `contextFromTraceparent` passes through unchanged.
 *
 * @example
 * withSpan('hookstream.ingest', ROOT_CONTEXT, {}, (ctx) => streams.add(event, { traceparent: traceparentOf(ctx) }))
 */
export function traceparentOf(ctx: Context): string | undefined {
  const sc = trace.getSpanContext(ctx)
  if (!sc || !isSpanContextValid(sc)) return undefined
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`
}
