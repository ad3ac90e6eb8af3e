import { parseTool } from '../../src/core/tool.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { deliveryPipeline } from '../../src/pipelines/delivery.js'
import { ForwardSink } from '../../src/sinks/forward.js'
import { defineScenario } from '../define-scenario.js'
import { startReceiver, type Receiver } from './forward.js'
import { runWebhookPipeline } from './run-webhook-pipeline.js'

const DESTINATIONS = 3

/**
 * Scenario: one tool with three destinations on three loopback receivers (each its own process, answering 200).
 * The webhook pipeline stores each event and fans it out; the delivery pipeline delivers every (event,
 * destination) pair. The figure is deliveries per second, with Node CPU per delivery, next to store-only.
 */
export const fanOut3 = defineScenario({
  name: 'fan-out-3',
  description: `webhookPipeline (store, fan-out) + deliveryPipeline, 1 tool, ${DESTINATIONS} loopback destinations (200, own processes), metrics on, batchSize 500`,
  baseline: 'pipeline-store',
  unit: 'deliveries/s',
  // each delivery costs about what a forward costs (~1–3 ms CPU): 2,000 events are 6,000 deliveries
  events: 2_000,
  async setup(ctx) {
    ctx.state.receivers = await Promise.all(Array.from({ length: DESTINATIONS }, () => startReceiver()))
    await ctx.preload()
  },
  async run(ctx) {
    const receivers = ctx.state.receivers as Receiver[]
    const tool = parseTool({ id: 'bench-tool', provider: 'github', secret: 'bench-secret', tenant_id: 'bench',
      destinations: receivers.map((r, i) => ({ id: `d${i}`, url: r.url })) })
    const target = ctx.events * DESTINATIONS
    const sink = new ForwardSink()
    const abort = new AbortController()
    let delivered = 0
    const failures: string[] = []
    const deliveries = new Promise<void>((resolve) => {
      deliveryPipeline({
        redis: ctx.redis, db: ctx.db, tools: { get: async (id) => (id === tool.id ? tool : undefined) }, forwardSink: sink,
        consumer: 'bench', keys: ctx.keys, batchSize: 500, blockMs: 1000, signal: abort.signal,
        onSettled: (env) => {
          if (env.outcome === 'forwarded') delivered++
          else failures.push(env.failure?.code ?? env.outcome ?? 'other')
          if (delivered + failures.length === target) abort.abort()
        },
        onClosed: () => resolve(),
      }).subscribe({ error: (err: Error) => { failures.push(err.message); abort.abort() } })
    })
    await runWebhookPipeline(ctx, { name: 'fan-out-3', tool, batchSize: 500, telemetry: { metrics: createMetrics() } })
    await deliveries
    await sink.close()
    if (failures.length > 0 || delivered !== target) throw new Error(`fan-out-3: ${delivered} of ${target} delivered; failures ${failures.slice(0, 5).join(', ')}`)
    ctx.state.receivers = undefined
    const received = await Promise.all(receivers.map((r) => r.stop()))
    if (received.some((r) => r.requests < ctx.events)) throw new Error(`fan-out-3: receivers got ${received.map((r) => r.requests).join(', ')} of ${ctx.events} each`)
    return { events: delivered, extra: { events: ctx.events, receiverConnections: received.reduce((n, r) => n + r.connections, 0) } }
  },
  async teardown(ctx) {
    await Promise.all(((ctx.state.receivers as Receiver[] | undefined) ?? []).map((r) => r.stop()))
  },
})
