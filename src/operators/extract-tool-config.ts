import { mergeMap, type OperatorFunction } from 'rxjs'
import { lastValueFrom } from 'rxjs'
import { isDone, type Envelope } from '../core/envelope.js'
import { isPipelineError, PipelineError } from '../core/errors.js'
import type { ToolConfig, ToolLookup } from '../core/tool.js'
import { holdWhileDown, type HoldOptions } from './hold.js'

/** Options of `extractToolConfig`. */
export interface ExtractToolConfigOptions {
  /** Where tools come from: the ToolRegistry (YAML + `webhook_tools`, cached and refreshed), or any lookup. */
  readonly tools: ToolLookup
  /** Lookups in flight at once. @defaultValue 64 */
  readonly concurrency?: number
  /** Passed to the infrastructure hold (tools cannot be loaded). */
  readonly hold?: HoldOptions
}

/**
 * Attaches the configuration of the event's tool (`tool_id`) to the envelope. An unknown tool fails
 * permanently with `UNKNOWN_TOOL`, a disabled one with `TOOL_DISABLED`, and a lookup that fails permanently
 * (a stored tool that cannot be read: `TOOL_UNREADABLE`) with its own error, so the event is dead-lettered;
 * when the tools cannot be loaded at all (database down) the envelope is held until they can.
 *
 * @example
 * envelopes$.pipe(extractToolConfig({ tools: registry }), map((env) => env.tool?.processingMode))
 */
export function extractToolConfig<E extends Envelope>(
  options: ExtractToolConfigOptions,
): OperatorFunction<E, E & { readonly tool?: ToolConfig }> {
  const concurrency = options.concurrency ?? 64
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`extractToolConfig: "concurrency" must be an integer of at least 1; got ${concurrency}`)
  }
  if (!options.tools) throw new TypeError('extractToolConfig: "tools" must be a tool lookup such as a ToolRegistry')
  return mergeMap(async (env: E): Promise<E & { readonly tool?: ToolConfig }> => {
    if (isDone(env)) return env
    const { tool_id: toolId, id } = env.message.event
    let tool: ToolConfig | undefined
    try {
      // getQueued: the event was accepted, so its tool may be newer than this process's cache
      tool = await lastValueFrom(holdWhileDown(() => options.tools.getQueued?.(toolId) ?? options.tools.get(toolId), options.hold))
    } catch (err) {
      // one tool that cannot be read (TOOL_UNREADABLE) fails its own events, not the pipeline
      if (isPipelineError(err) && err.kind === 'permanent') return { ...env, failure: err }
      throw err
    }
    if (!tool) {
      return { ...env, failure: new PipelineError('permanent', 'UNKNOWN_TOOL',
        `event ${id} names tool "${toolId}", which is not configured; add it (hookstream tools add, the admin API or the YAML config) and retry the event from the DLQ`) }
    }
    if (!tool.enabled) {
      return { ...env, tool, failure: new PipelineError('permanent', 'TOOL_DISABLED',
        `event ${id} is for tool "${toolId}", which is disabled; enable the tool and retry the event from the DLQ`) }
    }
    return { ...env, tool }
  }, concurrency)
}
