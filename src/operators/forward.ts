import type { Envelope } from '../core/envelope.js'
import type { ToolConfig } from '../core/tool.js'
import type { ForwardSink } from '../sinks/forward.js'

/** Options of `forwardStep`. */
export interface ForwardStepOptions {
  readonly sink: ForwardSink
  /** W3C traceparent to send for an envelope (tracing sets it to the forward span). @defaultValue the entry's own */
  readonly traceparentOf?: (env: Envelope) => string | undefined
}

/**
 * A step for `retryBackoff`: POSTs the event to its tool's `forward_url` (signed, Standard Webhooks headers)
 * when the tool is in `store_and_forward` mode, and sets outcome `forwarded`; a failure comes back on the
 * envelope, classified (5xx, 429, timeouts transient; other 4xx permanent). Other modes pass through.
 *
 * @example
 * envelopes$.pipe(store({ db }), retryBackoff({ step: forwardStep({ sink: new ForwardSink() }) }))
 */
export function forwardStep<E extends Envelope & { readonly tool?: ToolConfig; readonly transformed?: unknown }>(
  options: ForwardStepOptions,
): (env: E) => Promise<E> {
  return async (env) => {
    const tool = env.tool
    if (env.failure || env.outcome || !tool || tool.processingMode !== 'store_and_forward') return env
    const traceparent = options.traceparentOf?.(env) ?? env.message.traceparent
    const failures = await options.sink.write([{
      event: env.message.event, tool,
      ...(env.transformed !== undefined ? { transformed: env.transformed } : {}),
      ...(traceparent ? { traceparent } : {}),
    }])
    const failure = failures.get(0)
    return failure ? { ...env, failure } : { ...env, outcome: 'forwarded' }
  }
}
