import type { Config } from '../config/load-config.js'
import type { Logger } from '../observability/logger.js'
import { createMetrics, type Metrics } from '../observability/metrics.js'
import type { TelemetryOptions } from '../observability/pipeline-telemetry.js'
import { startTracing, type Tracing } from '../observability/start-tracing.js'

/** The service's metrics and tracing, with its logger (what `startTelemetry` returns). */
export interface ServiceTelemetry {
  readonly logger: Logger
  readonly metrics: Metrics
  readonly tracing: Tracing
  /** What the pipeline takes as its `telemetry` option. */
  readonly pipeline: TelemetryOptions
}

/**
 * Creates the metrics (with the event-type label budgets) and starts tracing; without OTEL_EXPORTER_OTLP_ENDPOINT
 * nothing is registered and the pipeline does no span work at all. `shutdown` closes both (metrics, then tracing).
 *
 * @example
 * const telemetry = startTelemetry(config, createLogger({ level: config.logLevel }))
 */
export function startTelemetry(config: Config, logger: Logger): ServiceTelemetry {
  const metrics = createMetrics({ maxEventTypesPerTool: config.metrics.maxEventTypesPerTool, maxEventTypes: config.metrics.maxEventTypes })
  const tracing = startTracing({ ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}) })
  return { logger, metrics, tracing, pipeline: { metrics, logger, tracing: tracing.enabled } }
}
