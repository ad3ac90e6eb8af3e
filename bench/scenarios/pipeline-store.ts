import { InMemorySpanExporter } from '@opentelemetry/sdk-trace'
import { sql } from 'kysely'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { startRetention } from '../../src/db/retention.js'
import { createMetrics } from '../../src/observability/metrics.js'
import type { TelemetryOptions } from '../../src/observability/pipeline-telemetry.js'
import { startTracing, type Tracing } from '../../src/observability/start-tracing.js'
import { defineScenario, type Scenario, type ScenarioContext } from '../define-scenario.js'
import { runWebhookPipeline } from './run-webhook-pipeline.js'

/** The store-only GitHub tool every pipeline-store scenario uses. */
export const storeTool: ToolConfig = parseTool({ id: 'bench-tool', provider: 'github', secret: 'bench-secret', tenant_id: 'bench', processing_mode: 'store' })

type Telemetry = 'off' | 'metrics' | 'tracing'

interface StoreVariant {
  readonly name: string
  readonly batchSize: number
  readonly maxInFlight?: number
  readonly telemetry: Telemetry
  readonly baseline: readonly string[]
  readonly targetRatio?: number
  readonly events?: number
  readonly repeat?: number
  readonly description?: string
}

const TELEMETRY_TEXT: Record<Telemetry, string> = { off: 'telemetry off', metrics: 'metrics on', tracing: 'metrics + tracing (in-memory exporter)' }

function telemetryFor(kind: Telemetry, ctx: ScenarioContext): TelemetryOptions | undefined {
  if (kind === 'off') return undefined
  return { metrics: createMetrics(), ...(kind === 'tracing' ? { tracing: (ctx.state.tracing as Tracing).enabled } : {}) }
}

function pipelineStore(v: StoreVariant): Scenario {
  const inFlight = v.maxInFlight ? `, maxInFlight ${v.maxInFlight}` : ''
  return defineScenario({
    name: v.name,
    description: v.description ??
      `webhookPipeline, store-only tool, ${TELEMETRY_TEXT[v.telemetry]} (batchSize ${v.batchSize}${inFlight}): dedupe + extractToolConfig + store + settle`,
    baseline: v.baseline,
    ...(v.targetRatio !== undefined ? { targetRatio: v.targetRatio } : {}),
    events: v.events ?? 20_000,
    ...(v.repeat ? { repeat: v.repeat } : {}),
    async setup(ctx) {
      await ctx.preload()
      if (v.telemetry === 'tracing') {
        const exporter = new InMemorySpanExporter()
        ctx.state.exporter = exporter
        ctx.state.tracing = startTracing({ serviceName: 'hookstream-bench', exporter })
      }
    },
    async run(ctx) {
      const settled = await runWebhookPipeline(ctx, {
        name: v.name, tool: storeTool, batchSize: v.batchSize,
        ...(v.maxInFlight ? { maxInFlight: v.maxInFlight } : {}),
        ...(telemetryFor(v.telemetry, ctx) ? { telemetry: telemetryFor(v.telemetry, ctx) as TelemetryOptions } : {}),
      })
      const exporter = ctx.state.exporter as InMemorySpanExporter | undefined
      return { events: settled, ...(exporter ? { extra: { spansPerEvent: exporter.getFinishedSpans().length / settled } } : {}) }
    },
    async teardown(ctx) {
      await (ctx.state.tracing as Tracing | undefined)?.shutdown()
      ;(ctx.state.exporter as InMemorySpanExporter | undefined)?.reset()
    },
  })
}

const VS_BASELINES = ['batched-consumer-1', 'batched-consumer-2', 'seeds-10-in-flight', 'bullmq-50']

/**
 * Store-only end to end: the default webhook pipeline for a `store` tool with metrics on, next to the
 * hand-written batched consumer (1 and 2 batches in flight), the seeds' design with 10 in flight and BullMQ at
 * concurrency 50.
 */
export const pipelineStore500 = pipelineStore({ name: 'pipeline-store', batchSize: 500, telemetry: 'metrics', baseline: VS_BASELINES })
/** The same at the service's default batch size (WORKER_BATCH_SIZE 100). */
export const pipelineStore100 = pipelineStore({ name: 'pipeline-store-b100', batchSize: 100, telemetry: 'metrics', baseline: VS_BASELINES })
/** batchSize 500 with 1,000 in flight, so the source reads the next batch while the previous one is written. */
export const pipelineStore500if1000 = pipelineStore({ name: 'pipeline-store-b500-if1000', batchSize: 500, maxInFlight: 1000, telemetry: 'metrics', baseline: VS_BASELINES })
/** batchSize 100 with 200 in flight. */
export const pipelineStore100if200 = pipelineStore({ name: 'pipeline-store-b100-if200', batchSize: 100, maxInFlight: 200, telemetry: 'metrics', baseline: VS_BASELINES })

// scenario 8: the same pipeline (batchSize 100, the service default) with telemetry off / metrics / metrics + tracing,
// interleaved, 4 runs each so a few-percent difference is not just the spread of one run
const OVERHEAD = { batchSize: 100, events: 10_000, repeat: 4 }
/** Baseline of the telemetry-overhead pair: no telemetry at all. */
export const storeTelemetryOff = pipelineStore({ ...OVERHEAD, name: 'store-telemetry-off', telemetry: 'off', baseline: [] })
/** Metrics on vs off (target within 5%: ≥ 0.95×). */
export const storeMetrics = pipelineStore({ ...OVERHEAD, name: 'store-metrics', telemetry: 'metrics', baseline: ['store-telemetry-off'], targetRatio: 0.95 })
/** Metrics + tracing (SDK with an in-memory exporter) vs metrics only (target within 15%: ≥ 0.85×). */
export const storeTracing = pipelineStore({ ...OVERHEAD, name: 'store-tracing', telemetry: 'tracing', baseline: ['store-metrics', 'store-telemetry-off'], targetRatio: 0.85 })

const OLD_ROWS = 200_000
/**
 * The store-only pipeline (batch 500) while retention deletes 200,000 expired rows beside it (EVENT_RETENTION,
 * batches of 1,000 with the default pause): the hot path's speed during a prune, next to `pipeline-store`.
 */
export const storeWhilePruning = defineScenario({
  name: 'store-while-pruning',
  description: `webhookPipeline store-only (batchSize 500) while retention prunes ${OLD_ROWS.toLocaleString('en')} expired rows (batch 1000)`,
  baseline: ['pipeline-store'],
  targetRatio: 0.8,
  events: 20_000,
  async setup(ctx) {
    await ctx.preload()
    await sql`INSERT INTO webhook_events (id, tool_id, tenant_id, event_type, repository, payload, stream_id, received_at)
      SELECT 'expired-' || n, 'expired-tool', 'bench', 'webhook.github.push', 'acme/api', '{"n":1}'::jsonb, '1-0', now() - interval '40 days'
      FROM generate_series(1, ${OLD_ROWS}) AS n`.execute(ctx.db)
    await sql`ANALYZE webhook_events`.execute(ctx.db)
  },
  async run(ctx) {
    const retention = startRetention({ db: ctx.db, eventsMs: 30 * 86_400_000, batch: 1000, maxBatches: OLD_ROWS, intervalMs: 3_600_000 })
    const started = performance.now()
    const pruning = retention.runOnce()
    const settled = await runWebhookPipeline(ctx, { name: 'store-while-pruning', tool: storeTool, batchSize: 500, rowsOfTool: storeTool.id })
    const seconds = (performance.now() - started) / 1000
    await retention.close() // stops after the statement running now
    const pruned = (await pruning).webhook_events
    const left = Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM webhook_events WHERE tool_id = 'expired-tool'`.execute(ctx.db)).rows[0]?.n)
    if (pruned + left !== OLD_ROWS) throw new Error(`store-while-pruning: ${pruned} expired rows pruned and ${left} left of ${OLD_ROWS}`)
    // the figure is the pipeline's own time; it counts only if the prune was still running when the pipeline finished
    return { events: settled, seconds, extra: { prunedRows: pruned, prunedPerSecond: Math.round(pruned / seconds), pruneOutlastedRun: left > 0 ? 'yes' : 'no' } }
  },
})
