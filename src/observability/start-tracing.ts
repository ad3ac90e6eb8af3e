import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { detectResources, resourceAttributesEnvDetector, resourceFromAttributes, serviceNameEnvDetector } from '@opentelemetry/resources'
import {
  AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler, TracerProvider,
  type Sampler, type SpanExporter, type SpanProcessor,
} from '@opentelemetry/sdk-trace'
import { ConfigError } from '../core/errors.js'
import { maskUrlCredentials } from './logger.js'

/** Options of `startTracing`. */
export interface TracingOptions {
  /**
   * `service.name` of the spans when neither OTEL_SERVICE_NAME nor a `service.name` in OTEL_RESOURCE_ATTRIBUTES
   * sets one. @defaultValue "hookstream"
   */
  readonly serviceName?: string
  /**
   * OTLP/HTTP collector base URL (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. `http://otel-collector:4318`; spans go to
   * `<endpoint>/v1/traces` in batches. A URL already ending in `/v1/traces` is used as is. Headers come from
   * OTEL_EXPORTER_OTLP_HEADERS / OTEL_EXPORTER_OTLP_TRACES_HEADERS (`key=value,…`).
   */
  readonly otlpEndpoint?: string
  /** Export each span at once to this exporter instead (tests: InMemorySpanExporter). */
  readonly exporter?: SpanExporter
  /** Where OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG are read. @defaultValue process.env */
  readonly env?: Readonly<Record<string, string | undefined>>
}

/** A running tracing setup. */
export interface Tracing {
  /** Whether a provider was registered (false: neither endpoint nor exporter given, spans are no-ops). */
  readonly enabled: boolean
  /** Flushes pending spans, then unregisters the provider, context manager and propagator. Idempotent. */
  shutdown(): Promise<void>
}

/** Values of OTEL_TRACES_SAMPLER that startTracing understands (the OpenTelemetry specification's built-in ones). */
export const TRACES_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const

let running = false

/**
 * The sampler OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG name (default `parentbased_always_on`). A ratio
 * sampler's argument is a number from 0 to 1 (default 1). Throws a ConfigError naming the variable otherwise.
 *
 * @example
 * samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' })
 */
export function samplerFromEnv(env: Readonly<Record<string, string | undefined>>): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase() || 'parentbased_always_on'
  const ratio = (): number => {
    const raw = (env.OTEL_TRACES_SAMPLER_ARG ?? '').trim()
    if (raw === '') return 1
    const n = Number(raw)
    if (!Number.isFinite(n) || n < 0 || n > 1) {
      throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', `must be a sampling ratio from 0 to 1 such as "0.1" for the ${name} sampler; got ${JSON.stringify(raw)}`)
    }
    return n
  }
  switch (name) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio())
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() })
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio()) })
    default:
      throw new ConfigError('OTEL_TRACES_SAMPLER', `must be one of ${TRACES_SAMPLERS.join(', ')}; got ${JSON.stringify(env.OTEL_TRACES_SAMPLER)}`)
  }
}

/**
 * Registers the OpenTelemetry trace SDK (AsyncLocalStorage context manager, W3C trace-context propagator) that
 * exports to `otlpEndpoint` (batched) or to `exporter` (one by one). The resource carries OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES; the sampler follows OTEL_TRACES_SAMPLER(_ARG). With neither endpoint nor exporter it
 * registers nothing and every span stays the API's no-op span, which costs next to nothing.
 * Only the service entry point calls this: importing `hookstream` as a library never loads the SDK.
 *
 * @example
 * const tracing = startTracing({ otlpEndpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT })
 * process.once('SIGTERM', () => void tracing.shutdown())
 */
export function startTracing(options: TracingOptions = {}): Tracing {
  const serviceName = options.serviceName ?? 'hookstream'
  if (typeof serviceName !== 'string' || serviceName.trim() === '') {
    throw new ConfigError('startTracing option "serviceName"', `must be a non-empty service name such as "hookstream"; got ${JSON.stringify(serviceName)}`)
  }
  const sampler = samplerFromEnv(options.env ?? process.env)
  const processors: SpanProcessor[] = []
  if (options.exporter) processors.push(new SimpleSpanProcessor({ exporter: options.exporter }))
  if (options.otlpEndpoint) processors.push(new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: tracesUrl(options.otlpEndpoint) }) }))
  if (processors.length === 0) return { enabled: false, shutdown: () => Promise.resolve() }
  if (running) {
    throw new ConfigError('startTracing', 'was called while tracing is already running; call shutdown() on the first setup before starting another')
  }
  running = true
  const resource = resourceFromAttributes({ 'service.name': serviceName })
    .merge(detectResources({ detectors: [resourceAttributesEnvDetector, serviceNameEnvDetector] }))
  const provider = new TracerProvider({ resource, sampler, spanProcessors: processors })
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(provider)
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
