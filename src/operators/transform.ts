import { defer, finalize, mergeMap, Observable, of } from 'rxjs'
import { isDone, type Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import { entryPayloadJson } from '../core/stream-entry.js'
import type { ToolConfig } from '../core/tool.js'
import type { BatchStage } from './batch-step.js'
import { TransformPool, type TransformOutcome, type TransformPoolOptions } from './transform-pool.js'
import type { TransformRules } from './transform-worker.js'

/** Options of `transform`. */
export interface TransformOptions {
  /**
   * Batches being transformed at once, so the next read's batch does not wait for the last rule of this one.
   * 1 keeps batches, and the parts of each, in arrival order (what per-key order needs). @defaultValue 2
   */
  readonly concurrency?: number
  /** The worker processes that evaluate the rules (count, heap, batch, result size); see `TransformPoolOptions`. */
  readonly pool?: TransformPoolOptions
}

// one array per tool version, so a batch to a worker carries each tool's rules once
const rulesByTool = new WeakMap<ToolConfig, TransformRules>()
function rulesOf(tool: ToolConfig): TransformRules {
  let rules = rulesByTool.get(tool)
  if (!rules) {
    const spec = tool.transform
    rulesByTool.set(tool, (rules = typeof spec === 'string' ? [[null, spec]] : Object.entries(spec ?? {})))
  }
  return rules
}

function failure(tool: ToolConfig, eventId: string, outcome: Exclude<TransformOutcome, { ok: true }>): PipelineError {
  const rule = outcome.rule === null ? '' : `rule "${outcome.rule}" `
  const fix = outcome.code === 'TRANSFORM_INVALID' ? 'fix the tool\'s transform'
    : outcome.code === 'TRANSFORM_FAILED' ? 'fix the rule and retry the event from the DLQ'
      : `make the rule cheaper${outcome.code === 'TRANSFORM_TIMEOUT' ? ' or raise the tool\'s transform_timeout' : ''}, then retry the event from the DLQ`
  const what = outcome.code === 'TRANSFORM_INVALID' ? `${rule}does not compile`
    : outcome.code === 'TRANSFORM_FAILED' ? `${rule}failed on event ${eventId}` : `${rule}was stopped on event ${eventId}`
  return new PipelineError('permanent', outcome.code, `tool "${tool.id}" transform ${what}: ${outcome.message}; ${fix}`)
}

/**
 * In `transform_and_store` mode, applies the tool's transformation rules to the payload and keeps the result
 * next to the original (`transformed`). Rules are JSONata: one expression for the whole result, or an object
 * of output field → expression. They run on a small pool of worker processes (each compiles a rule once), so a
 * runaway rule never stalls the event loop: an event whose rules overrun the tool's `transform_timeout`
 * (default 100 ms) fails with `TRANSFORM_TIMEOUT`, one that runs the worker's heap out or returns an oversized
 * result with `TRANSFORM_LIMIT`, a rule that throws with `TRANSFORM_FAILED`, and one that does not compile with
 * `TRANSFORM_INVALID`; all are permanent. Other modes pass through. The workers end when the stream does.
 * A batch with events to transform leaves in parts, in its order, as its results come back (a part is at least a
 * quarter of the batch, or its rest), so the store writes the first part while the pool works on the next; a
 * batch with none passes on whole, at once.
 *
 * @example
 * // tool.transform = { ref: 'ref', pusher: 'pusher.name', commits: '$count(commits)' }
 * batches$.pipe(extractToolConfig({ tools }), transform())
 */
export function transform<E extends Envelope & { readonly tool?: ToolConfig }>(
  options: TransformOptions = {},
): BatchStage<E, E & { readonly transformed?: unknown }> {
  const concurrency = options.concurrency ?? 2
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`transform: "concurrency" must be an integer of at least 1; got ${concurrency}`)
  }
  // checks the pool's options now rather than on the first event; workers start only with a first job
  new TransformPool(options.pool)
  const applies = (env: E) => env.tool?.processingMode === 'transform_and_store' && !isDone(env)
  return (batches$) => defer(() => {
    const pool = new TransformPool(options.pool)
    const apply = async (env: E): Promise<E & { readonly transformed?: unknown }> => {
      if (!applies(env)) return env
      const tool = env.tool as ToolConfig
      const { fields, event } = env.message
      // the entry's event text holds the payload as received; copying it to a worker is cheaper than a clone
      const payloadJson = entryPayloadJson(fields)
      const source = payloadJson !== undefined ? { payloadJson } : fields.event !== undefined ? { eventJson: fields.event } : { payload: event.payload }
      // keyed by tool, so a tool whose rules overrun their budget shares the workers instead of queueing the others
      const outcome = await pool.run({ rules: rulesOf(tool), ...source, timeoutMs: tool.transformTimeoutMs, key: tool.id })
      if (!outcome.ok) return { ...env, failure: failure(tool, env.message.event.id, outcome) }
      return { ...env, transformed: outcome.value }
    }
    // the pool queues the jobs and sends them to its workers in batches of its own; the results go on in parts
    return batches$.pipe(
      mergeMap((envs) => (envs.some(applies) ? partsAsDone(envs.map(apply)) : of(envs)), concurrency),
      finalize(() => void pool.close()),
    )
  })
}

/**
 * The results of one batch, in batch order, as parts: each part is the run of results ready after the last part,
 * once it holds at least a quarter of the batch (or the rest of it), checked once per turn of the event loop (the
 * pool resolves a worker's answer of up to `maxBatch` jobs in one turn). The first events are stored and settled
 * while the pool still works on the rest, and settling frees the source's credit for the next read.
 */
function partsAsDone<B>(results: readonly Promise<B>[]): Observable<readonly B[]> {
  const minPart = Math.ceil(results.length / 4)
  return new Observable<readonly B[]>((subscriber) => {
    const values = new Array<B>(results.length)
    const ready = new Uint8Array(results.length)
    let sent = 0
    let scheduled = false
    const flush = () => {
      scheduled = false
      let end = sent
      while (end < results.length && ready[end] === 1) end++
      if (end - sent < minPart && end < results.length) return
      subscriber.next(values.slice(sent, end))
      sent = end
      if (sent === results.length) subscriber.complete()
    }
    results.forEach((result, i) => void result.then((value) => {
      values[i] = value
      ready[i] = 1
      if (scheduled) return
      scheduled = true
      setImmediate(flush)
    }, (err: unknown) => subscriber.error(err)))
  })
}
