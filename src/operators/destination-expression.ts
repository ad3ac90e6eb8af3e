import type { Envelope } from '../core/envelope.js'
import type { TransformOutcome, TransformPool } from './transform-pool.js'
import type { TransformRules } from './transform-worker.js'

// one rules array per expression text, so a batch to a worker carries each expression once
const rulesByText = new Map<string, TransformRules>()
const MAX_CACHED = 10_000

/**
 * Evaluates a destination's JSONata expression (its filter or transform) over the event's payload on the
 * transform pool's worker processes, within `timeoutMs`: a runaway expression stops there and never stalls the
 * event loop. Never rejects: a failure is an outcome (`TRANSFORM_FAILED`, `TRANSFORM_TIMEOUT`, `TRANSFORM_LIMIT`).
 *
 * @example
 * const outcome = await runDestinationExpression(pool, env, 'action = "opened"', 100) // { ok: true, value: true }
 */
export function runDestinationExpression(pool: TransformPool, env: Envelope, expression: string, timeoutMs: number): Promise<TransformOutcome> {
  let rules = rulesByText.get(expression)
  if (!rules) {
    if (rulesByText.size >= MAX_CACHED) rulesByText.clear()
    rulesByText.set(expression, (rules = [[null, expression]]))
  }
  const { fields, event } = env.message
  // the entry's event text holds the payload as received; copying it to a worker is cheaper than a clone
  const source = fields.event !== undefined ? { eventJson: fields.event } : { payload: event.payload }
  // keyed by tool: one tool's slow expressions share the workers with the other tools' instead of queueing them
  return pool.run({ rules, ...source, timeoutMs, key: event.tool_id })
}
