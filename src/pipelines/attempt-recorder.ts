import type { Envelope } from '../core/envelope.js'
import type { ToolConfig } from '../core/tool.js'
import type { DeliveryLog } from '../db/delivery-log.js'
import type { Metrics } from '../observability/metrics.js'
import type { ForwardAttempt } from '../sinks/forward.js'

/** An envelope after a forward or delivery step: the attempt it made, if it made one. */
export type AttemptedEnvelope = Envelope & { readonly tool?: ToolConfig; readonly forwardAttempt?: ForwardAttempt }

/**
 * The `onStepResult` of `retryBackoff` in both pipelines that send requests (the webhook pipeline's forward, the
 * delivery pipeline's deliveries): each attempt that sent a request becomes a `webhook_deliveries` row (with
 * the next attempt's time when one is scheduled) and a `webhook_forward_attempts_total` /
 * `webhook_forward_duration_seconds` sample. A delivery the breaker or the rate limit held back sent nothing and
 * is no attempt. Undefined when there is neither a log nor metrics.
 *
 * @example
 * retryBackoff({ step, onStepResult: attemptRecorder(deliveryLog, telemetry.metrics) })
 */
export function attemptRecorder(log: DeliveryLog | undefined, metrics: Metrics | undefined) {
  if (!log && !metrics) return undefined
  return (result: AttemptedEnvelope, nextAttemptAtMs: number | undefined) => {
    const attempt = result.forwardAttempt
    if (!attempt?.sent) return
    const { failure } = attempt
    metrics?.forwardAttempt(attempt.key, !failure ? 'success' : failure.kind === 'permanent' ? 'permanent' : 'transient', attempt.durationMs / 1000)
    log?.record({
      toolId: result.tool?.id ?? result.message.event.tool_id, eventId: result.message.event.id, destinationId: attempt.destination,
      attempt: result.attempts + 1, startedAt: new Date(attempt.startedAt), durationMs: attempt.durationMs, httpStatus: attempt.status,
      errorClass: failure?.kind, errorCode: failure?.code, responseBody: attempt.responseBody,
      nextAttemptAt: nextAttemptAtMs === undefined ? undefined : new Date(nextAttemptAtMs),
    })
  }
}
