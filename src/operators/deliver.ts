import type { Destination } from '../core/destination.js'
import { isDone, type Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import type { ToolConfig } from '../core/tool.js'
import type { ForwardAttempt, ForwardItem, ForwardSink } from '../sinks/forward.js'
import { REPLAY_FIELD } from '../sources/enqueue-deliveries.js'
import { runDestinationExpression } from './destination-expression.js'
import { entryJson, sendAttempt } from './forward.js'
import type { TransformPool } from './transform-pool.js'

/** Options of `deliverStep`. */
export interface DeliverStepOptions {
  readonly sink: ForwardSink
  /** Worker threads for the destinations' transforms (the delivery pipeline's pool). */
  readonly pool: TransformPool
  /** Record a `webhook.forward` span per attempt and send its traceparent. @defaultValue false */
  readonly tracing?: boolean
}

// the ForwardSink's view of a destination: its URL, headers and secrets; without its own secret the tool's
// forward secret (or inbound secret) signs, as for forward_url
const views = new WeakMap<Destination, WeakMap<ToolConfig, ForwardItem['tool']>>()
function viewOf(tool: ToolConfig, d: Destination): ForwardItem['tool'] {
  let byTool = views.get(d)
  if (!byTool) views.set(d, (byTool = new WeakMap()))
  let view = byTool.get(tool)
  if (!view) {
    const secrets = d.secret
      ? { forwardSecret: d.secret, ...(d.previousSecret ? { previousForwardSecret: d.previousSecret } : {}),
          ...(d.previousSecretExpiresAt !== undefined ? { previousForwardSecretExpiresAt: d.previousSecretExpiresAt } : {}) }
      : { ...(tool.forwardSecret ? { forwardSecret: tool.forwardSecret } : {}), ...(tool.previousForwardSecret ? { previousForwardSecret: tool.previousForwardSecret } : {}),
          ...(tool.previousForwardSecretExpiresAt !== undefined ? { previousForwardSecretExpiresAt: tool.previousForwardSecretExpiresAt } : {}) }
    view = Object.freeze({ id: tool.id, secret: tool.secret, forwardUrl: d.url, ...secrets, ...(d.headers ? { forwardHeaders: d.headers } : {}) })
    byTool.set(tool, view)
  }
  return view
}

/**
 * A step for `retryBackoff` in the delivery pipeline: POSTs the event to the envelope's `destination` (signed
 * with its secret, with its headers and timeout; the body is its JSONata transform's result when it has one,
 * else the event as it was on the stream) and sets outcome `forwarded`. A failure comes back on the envelope,
 * classified as ForwardSink classifies it; a transform that fails is permanent (`TRANSFORM_FAILED`,
 * `TRANSFORM_TIMEOUT`, `TRANSFORM_LIMIT`).
 *
 * @example
 * deliveries$.pipe(resolveDestination(), retryBackoff({ step: deliverStep({ sink, pool }), policy }))
 */
export function deliverStep<E extends Envelope & { readonly tool?: ToolConfig; readonly destination?: Destination; readonly forwardAttempt?: ForwardAttempt }>(
  options: DeliverStepOptions,
): (env: E, signal?: AbortSignal) => Promise<E> {
  return async (env, signal) => {
    const { tool, destination: d } = env
    if (isDone(env) || !tool || !d) return env
    let body: string | undefined
    if (d.transform !== undefined) {
      const outcome = await runDestinationExpression(options.pool, env, d.transform, tool.transformTimeoutMs)
      if (!outcome.ok) {
        return { ...env, failure: new PipelineError('permanent', outcome.code,
          `destination "${d.id}" of tool "${tool.id}": its transform failed on event ${env.message.event.id}: ${outcome.message}; fix the transform and retry the event from the DLQ`) }
      }
      body = JSON.stringify(outcome.value ?? null)
    }
    return sendAttempt(env, options.sink, options.tracing, env.message.traceparent, (traceparent): ForwardItem => ({
      event: env.message.event, tool: viewOf(tool, d), destinationId: d.id,
      ...(body !== undefined ? { body } : { eventJson: entryJson(env.message) }),
      ...(d.timeoutMs !== undefined ? { timeoutMs: d.timeoutMs } : {}),
      ...(d.rateLimit ? { rateLimit: d.rateLimit } : {}),
      ...(d.maxConcurrency !== undefined ? { maxConcurrency: d.maxConcurrency } : {}),
      ...(traceparent ? { traceparent } : {}),
      ...(env.message.fields[REPLAY_FIELD] ? { replayId: env.message.fields[REPLAY_FIELD] } : {}),
    }), signal)
  }
}
