import type { ToolConfig } from '../../src/core/tool.js'
import type { TelemetryOptions } from '../../src/observability/pipeline-telemetry.js'
import { DeliveryLog } from '../../src/db/delivery-log.js'
import { webhookPipeline, type WebhookEnvelope } from '../../src/pipelines/webhook.js'
import { CircuitBreakers } from '../../src/sinks/circuit-breaker.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { countRows } from '../baselines/insert-rows.js'
import type { ScenarioContext } from '../define-scenario.js'

/** Options of `runWebhookPipeline`. */
export interface PipelineRunOptions {
  /** Scenario name, for error messages. */
  readonly name: string
  /** The only tool the pipeline knows; every event's `tool_id` must be its id. */
  readonly tool: ToolConfig
  readonly batchSize: number
  /** @defaultValue batchSize (the pipeline's own default) */
  readonly maxInFlight?: number
  readonly telemetry?: TelemetryOptions
  /** webhookPipeline's forwardConcurrency and the sink's perDestinationConcurrency. @defaultValue the defaults */
  readonly forwardConcurrency?: number
  /** Stop after this many settled envelopes. @defaultValue ctx.events */
  readonly events?: number
  /** Called for each settled envelope (after the count). */
  readonly onSettled?: (env: WebhookEnvelope) => void
  /** Stop reading once this signal aborts even if fewer were settled (latency runs). */
  readonly stop?: AbortSignal
  /** Expected rows in webhook_events afterwards. @defaultValue the settled count */
  readonly expectRows?: number
  /** Count only this tool's rows in the check (other rows may come and go beside the run). @defaultValue every row */
  readonly rowsOfTool?: string
  /**
   * Run the forward as the service does: a circuit breaker per destination and every attempt written to
   * `webhook_deliveries` by a DeliveryLog (checked: one row per forwarded event). @defaultValue false
   */
  readonly guarded?: boolean
}

async function countAttempts(ctx: ScenarioContext): Promise<number> {
  return Number((await ctx.pool.query('SELECT count(*)::int AS n FROM webhook_deliveries')).rows[0]?.n ?? 0)
}

/**
 * Runs `webhookPipeline` over this run's stream until `events` envelopes were settled (or `stop` aborted),
 * then checks that nothing failed and that `webhook_events` holds one row per settled event.
 *
 * @example
 * const settled = await runWebhookPipeline(ctx, { name: 'pipeline-store', tool, batchSize: 500 })
 */
export async function runWebhookPipeline(ctx: ScenarioContext, options: PipelineRunOptions): Promise<number> {
  const { name, tool } = options
  const target = options.events ?? ctx.events
  const forwardSink = new ForwardSink({
    ...(options.forwardConcurrency ? { perDestinationConcurrency: options.forwardConcurrency } : {}),
    ...(options.guarded ? { breakers: new CircuitBreakers() } : {}),
  })
  const deliveryLog = options.guarded ? new DeliveryLog({ db: ctx.db }) : undefined
  const attemptsBefore = deliveryLog ? await countAttempts(ctx) : 0
  const abort = new AbortController()
  options.stop?.addEventListener('abort', () => abort.abort(), { once: true })
  let settled = 0
  const outcomes = new Map<string, number>()
  const errors: Error[] = []
  const closed = new Promise<{ drained: boolean }>((resolve) => {
    webhookPipeline({
      redis: ctx.redis, db: ctx.db, tools: { get: async (id) => (id === tool.id ? tool : undefined) }, forwardSink, deliveryLog,
      consumer: 'bench', keys: ctx.keys, batchSize: options.batchSize, blockMs: 1000, signal: abort.signal,
      ...(options.maxInFlight ? { maxInFlight: options.maxInFlight } : {}),
      ...(options.forwardConcurrency ? { forwardConcurrency: options.forwardConcurrency } : {}),
      ...(options.telemetry ? { telemetry: options.telemetry } : {}),
      onSettled: (env) => {
        const outcome = env.failure ? `failed:${env.failure.code}` : env.outcome ?? 'other'
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
        settled++
        options.onSettled?.(env)
        ctx.progress(settled)
        if (settled === target) abort.abort()
      },
      onSourceError: (err) => errors.push(err),
      onClosed: resolve,
    }).subscribe({ error: (err: Error) => { errors.push(err); abort.abort() } })
  })
  const { drained } = await closed
  await forwardSink.close()
  if (deliveryLog) {
    await deliveryLog.close()
    const logged = (await countAttempts(ctx)) - attemptsBefore
    if (logged !== settled) throw new Error(`${name}: ${logged} delivery attempts logged for ${settled} forwarded events`)
  }
  if (errors.length > 0) throw new Error(`${name}: ${errors.length} errors, first: ${errors[0]?.message}`)
  const failed = [...outcomes].filter(([k]) => k.startsWith('failed:') || k === 'dead_lettered' || k === 'parked')
  if (failed.length > 0) throw new Error(`${name}: outcomes ${JSON.stringify([...outcomes])}`)
  const rows = options.rowsOfTool === undefined ? await countRows(ctx.pool)
    : Number((await ctx.pool.query('SELECT count(*)::int AS n FROM webhook_events WHERE tool_id = $1', [options.rowsOfTool])).rows[0]?.n ?? 0)
  const expected = options.expectRows ?? settled
  if (!drained || rows !== expected || (!options.stop && settled !== target)) {
    throw new Error(`${name}: stored ${rows} rows, expected ${expected}; settled ${settled} of ${target} (drained: ${drained}; outcomes ${JSON.stringify([...outcomes])})`)
  }
  return settled
}
