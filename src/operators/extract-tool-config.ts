import { isDone, type Envelope } from '../core/envelope.js'
import { isPipelineError, PipelineError } from '../core/errors.js'
import type { ToolConfig, ToolLookup } from '../core/tool.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { HoldOptions } from './hold.js'

/** Options of `extractToolConfig`. */
export interface ExtractToolConfigOptions {
  /** Where tools come from: the ToolRegistry (YAML + `webhook_tools`, cached and refreshed), or any lookup. */
  readonly tools: ToolLookup
  /** Passed to the infrastructure hold (tools cannot be loaded): the batch waits until they can. */
  readonly hold?: HoldOptions
}

type Found = ToolConfig | undefined | PipelineError

/**
 * Attaches the configuration of the event's tool (`tool_id`) to the envelope, looking each tool of a batch up
 * once. An unknown tool fails permanently with `UNKNOWN_TOOL`, a disabled one with `TOOL_DISABLED`, and a lookup
 * that fails permanently (a stored tool that cannot be read: `TOOL_UNREADABLE`) with its own error, so the
 * event is dead-lettered; when the tools cannot be loaded at all (database down) the batch is held until they
 * can.
 *
 * @example
 * batches$.pipe(extractToolConfig({ tools: registry }), map((envs) => envs.map((env) => env.tool?.processingMode)))
 */
export function extractToolConfig<E extends Envelope>(
  options: ExtractToolConfigOptions,
): BatchStage<E, E & { readonly tool?: ToolConfig }> {
  if (!options.tools) throw new TypeError('extractToolConfig: "tools" must be a tool lookup such as a ToolRegistry')
  const { tools } = options
  // getQueued: the event was accepted, so its tool may be newer than this process's cache
  const lookup = (toolId: string): Promise<Found> => (tools.getQueued?.(toolId) ?? tools.get(toolId)).catch((err: unknown) => {
    // one tool that cannot be read (TOOL_UNREADABLE) fails its own events, not the pipeline
    if (isPipelineError(err) && err.kind === 'permanent') return err
    throw err
  })
  const attach = (env: E, tool: Found): E & { readonly tool?: ToolConfig } => {
    const { tool_id: toolId, id } = env.message.event
    if (tool instanceof PipelineError) return { ...env, failure: tool }
    if (!tool) {
      return { ...env, failure: new PipelineError('permanent', 'UNKNOWN_TOOL',
        `event ${id} names tool "${toolId}", which is not configured; add it (hookstream tools add, the admin API or the YAML config) and retry the event from the DLQ`) }
    }
    if (!tool.enabled) {
      return { ...env, tool, failure: new PipelineError('permanent', 'TOOL_DISABLED',
        `event ${id} is for tool "${toolId}", which is disabled; enable the tool and retry the event from the DLQ`) }
    }
    return { ...env, tool }
  }
  const attachAll = async (envs: readonly E[], found: Map<string, Promise<Found>>) => {
    const byTool = new Map<string, Found>()
    await Promise.all([...found].map(async ([toolId, tool]) => { byTool.set(toolId, await tool) }))
    return envs.map((env) => (isDone(env) ? env : attach(env, byTool.get(env.message.event.tool_id))))
  }
  return batchStep((envs) => {
    const found = new Map<string, Promise<Found>>()
    for (const env of envs) {
      if (isDone(env)) continue
      const toolId = env.message.event.tool_id
      if (!found.has(toolId)) found.set(toolId, lookup(toolId))
    }
    return found.size === 0 ? envs : attachAll(envs, found)
  }, options.hold ? { hold: options.hold } : {})
}
