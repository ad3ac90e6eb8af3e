import {
  context, isSpanContextValid, propagation, SpanKind, SpanStatusCode, trace,
  type Attributes, type Context, type Span, type Tracer,
} from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  BatchSpanProcessor, NodeTracerProvider, SimpleSpanProcessor, type SpanExporter, type SpanProcessor,
} from '@opentelemetry/sdk-trace-node'
import { ConfigError } from '../core/errors.js'
import { SpanAttributes } from './attributes.js'
import { maskUrlCredentials } from './logger.js'

/** The tracer name every hookstream span is created with. */
export const TRACER_NAME = 'hookstream'

/** Options of `startTracing`. */
export interface TracingOptions {
  /** `service.name` of the spans (OTEL_SERVICE_NAME). */
  readonly serviceName: string
  /**
   * OTLP/HTTP collector base URL (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. `http://otel-collector:4318`; spans go to
   * `<endpoint>/v1/traces` in batches. A URL already ending in `/v1/traces` is used as is.
   */
  readonly otlpEndpoint?: string
  /** Export each span at once to this exporter instead (tests: InMemorySpanExporter). */
  readonly exporter?: SpanExporter
}

/** A running tracing setup. */
export interface Tracing {
  /** Whether a provider was registered (false: neither endpoint nor exporter given, spans are no-ops). */
  readonly enabled: boolean
  /** Flushes pending spans, then unregisters the provider, context manager and propagator. Idempotent. */
  shutdown(): Promise<void>
}

let running = false

/**
 * Registers a NodeTracerProvider (AsyncLocalStorage context manager, W3C trace-context propagator) that exports
 * to `otlpEndpoint` (batched) or to `exporter` (one by one). With neither, it registers nothing and every span
 * stays the API's no-op span, which costs next to nothing.
 *
 * @example
 * const tracing = startTracing({ serviceName: 'hookstream', otlpEndpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT })
 * process.once('SIGTERM', () => void tracing.shutdown())
 */
export function startTracing(options: TracingOptions): Tracing {
  if (typeof options.serviceName !== 'string' || options.serviceName.trim() === '') {
    throw new ConfigError('OTEL_SERVICE_NAME', `must be a non-empty service name such as "hookstream"; got ${JSON.stringify(options.serviceName)}`)
  }
  const processors: SpanProcessor[] = []
  if (options.exporter) processors.push(new SimpleSpanProcessor(options.exporter))
  if (options.otlpEndpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(options.otlpEndpoint) })))
  if (processors.length === 0) return { enabled: false, shutdown: () => Promise.resolve() }
  if (running) {
    throw new ConfigError('startTracing', 'was called while tracing is already running; call shutdown() on the first setup before starting another')
  }
  running = true
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName }),
    spanProcessors: processors,
  })
  provider.register()
  let done: Promise<void> | undefined
  return {
    enabled: true,
    shutdown() {
      done ??= provider.shutdown().finally(() => {
        trace.disable()
        context.disable()
        propagation.disable()
        running = false
      })
      return done
    },
  }
}

function tracesUrl(endpoint: string): string {
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    url = new URL('invalid:')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('OTEL_EXPORTER_OTLP_ENDPOINT',
      `must be an http(s) URL of an OTLP/HTTP collector such as "http://otel-collector:4318"; got "${maskUrlCredentials(endpoint)}"`)
  }
  const base = endpoint.replace(/\/+$/, '')
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`
}

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
