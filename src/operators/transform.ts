import { mergeMap, type OperatorFunction } from 'rxjs'
import jsonata from 'jsonata'
import { isDone, type Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import type { ToolConfig } from '../core/tool.js'

/** Options of `transform`. */
export interface TransformOptions {
  /** Events transformed at once. @defaultValue 32 */
  readonly concurrency?: number
}

// JSONata results carry internal markers (sequence flags on arrays); keep only their JSON
const plain = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)))

interface CompiledRule { readonly field: string | undefined; readonly expression: jsonata.Expression }
interface Compiled { readonly source: string; readonly rules: readonly CompiledRule[] | PipelineError }

function compile(tool: ToolConfig): Compiled {
  const spec = tool.transform
  const source = JSON.stringify(spec)
  const entries: [string | undefined, string][] = typeof spec === 'string' ? [[undefined, spec]] : Object.entries(spec ?? {})
  const rules: CompiledRule[] = []
  for (const [field, text] of entries) {
    try {
      rules.push({ field, expression: jsonata(text) })
    } catch (err) {
      return { source, rules: new PipelineError('permanent', 'TRANSFORM_INVALID',
        `tool "${tool.id}" transform rule ${field === undefined ? '' : `"${field}" `}does not compile: ${(err as Error).message}; fix the tool's transform`, { cause: err }) }
    }
  }
  return { source, rules }
}

/**
 * In `transform_and_store` mode, applies the tool's transformation rules to the payload and keeps the result
 * next to the original (`transformed`). Rules are JSONata: one expression for the whole result, or an object
 * of output field → expression. Each tool's rules are compiled once (again when they change). A rule that
 * fails is a permanent `TRANSFORM_FAILED` naming the rule. Other modes pass through.
 *
 * @example
 * // tool.transform = { ref: 'ref', pusher: 'pusher.name', commits: '$count(commits)' }
 * envelopes$.pipe(extractToolConfig({ tools }), transform())
 */
export function transform<E extends Envelope & { readonly tool?: ToolConfig }>(
  options: TransformOptions = {},
): OperatorFunction<E, E & { readonly transformed?: unknown }> {
  const concurrency = options.concurrency ?? 32
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`transform: "concurrency" must be an integer of at least 1; got ${concurrency}`)
  }
  const cache = new Map<string, Compiled>()
  return mergeMap(async (env: E): Promise<E & { readonly transformed?: unknown }> => {
    const tool = env.tool
    if (isDone(env) || !tool || tool.processingMode !== 'transform_and_store') return env
    let compiled = cache.get(tool.id)
    if (!compiled || compiled.source !== JSON.stringify(tool.transform)) cache.set(tool.id, (compiled = compile(tool)))
    if (compiled.rules instanceof PipelineError) return { ...env, failure: compiled.rules }
    const payload = env.message.event.payload
    const out: Record<string, unknown> = {}
    for (const rule of compiled.rules) {
      try {
        const value = plain(await rule.expression.evaluate(payload))
        if (rule.field === undefined) return { ...env, transformed: value ?? null }
        if (value !== undefined) out[rule.field] = value
      } catch (err) {
        return { ...env, failure: new PipelineError('permanent', 'TRANSFORM_FAILED',
          `tool "${tool.id}" transform rule ${rule.field === undefined ? '' : `"${rule.field}" `}failed on event ${env.message.event.id}: ` +
          `${(err as Error).message}; fix the rule and retry the event from the DLQ`, { cause: err }) }
      }
    }
    return { ...env, transformed: out }
  }, concurrency)
}
