import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { webhookPipeline } from '../../src/pipelines/webhook.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { countRows } from '../baselines/insert-rows.js'
import { defineScenario, type Scenario } from '../define-scenario.js'

function pipelineStore(name: string, batchSize: number): Scenario {
  return defineScenario({
    name,
    description: `webhookPipeline, store-only tool, metrics on (batchSize ${batchSize}): dedupe + extractToolConfig + store + settle`,
    baseline: ['batched-consumer-1', 'seeds-10-in-flight', 'bullmq-50'],
    events: 20_000,
    setup: (ctx) => ctx.preload(),
    async run(ctx) {
      const tool: ToolConfig = parseTool({ id: 'bench-tool', provider: 'github', secret: 'bench-secret', tenant_id: 'bench', processing_mode: 'store' })
      const forwardSink = new ForwardSink()
      const abort = new AbortController()
      let settled = 0
      const outcomes = new Map<string, number>()
      const errors: Error[] = []
      const closed = new Promise<{ drained: boolean }>((resolve) => {
        webhookPipeline({
          redis: ctx.redis, db: ctx.db, tools: { get: async (id) => (id === tool.id ? tool : undefined) }, forwardSink,
          consumer: 'bench', keys: ctx.keys, batchSize, blockMs: 1000, signal: abort.signal,
          telemetry: { metrics: createMetrics() },
          onSettled: (env) => {
            const outcome = env.failure ? `failed:${env.failure.code}` : env.stored ? 'stored' : 'other'
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
            settled++
            ctx.progress(settled)
            if (settled === ctx.events) abort.abort()
          },
          onSourceError: (err) => errors.push(err),
          onClosed: resolve,
        }).subscribe({ error: (err: Error) => { errors.push(err); abort.abort() } })
      })
      const { drained } = await closed
      await forwardSink.close()
      if (errors.length > 0) throw new Error(`${name}: ${errors.length} errors, first: ${errors[0]?.message}`)
      const rows = await countRows(ctx.pool)
      if (!drained || rows !== ctx.events) {
        throw new Error(`${name}: stored ${rows} rows of ${ctx.events} (drained: ${drained}; outcomes ${JSON.stringify([...outcomes])})`)
      }
      return { events: settled }
    },
  })
}

/**
 * Store-only end to end: the default webhook pipeline for a `store` tool with metrics on, next to the
 * hand-written batched consumer, the seeds' design with 10 in flight and BullMQ at concurrency 50.
 */
export const pipelineStore500 = pipelineStore('pipeline-store', 500)
/** The same at the service's default batch size (WORKER_BATCH_SIZE 100). */
export const pipelineStore100 = pipelineStore('pipeline-store-b100', 100)
