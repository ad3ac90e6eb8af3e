import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createIngestHandler } from '../../src/http/ingest.js'
import { createRouter, startHttpServer } from '../../src/http/server.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { defineScenario, type Scenario } from '../define-scenario.js'
import { runChild } from '../run-child.js'
import { cleanup, writeBodies } from './ingest.js'
import { runWebhookPipeline } from './run-webhook-pipeline.js'

const SECRET = 'bench-secret'
const TARGET_P99_MS = 100
/** Seconds of load when `--duration` is not given (the issue asks for 60; 20 keeps the default run near 15 min on 2 cores). */
export const DEFAULT_LATENCY_SECONDS = 20

interface LoadResult {
  sent: number; accepted: number; failed: number; failures: Record<string, number>; unanswered: number; sendSeconds: number; seconds: number
  httpP50Ms: number; httpP99Ms: number; httpMaxMs: number
}

function quantile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN
}

function latency(ratePerSec: number): Scenario {
  const name = `latency-${ratePerSec}`
  const tool: ToolConfig = parseTool({ id: 'bench-gh', provider: 'github', secret: SECRET, tenant_id: 'bench', processing_mode: 'store' })
  return defineScenario({
    name,
    description: `open-loop producer (own process) POSTs signed GitHub webhooks at ${ratePerSec.toLocaleString('en')}/s to a real ingest server; ` +
      'webhookPipeline (store, metrics on, batchSize 100) consumes; figure = p99 ms from ingest accept (StreamEvent.timestamp) ' +
      'to settled (onSettled: row committed and entry acked)',
    unit: 'ms p99',
    events: ratePerSec * DEFAULT_LATENCY_SECONDS,
    repeat: 1,
    async setup(ctx) {
      ctx.state.bodiesFile = await writeBodies(ctx)
      const stream = new StreamClient({ redis: ctx.redis, stream: ctx.keys.stream })
      await stream.ensureGroup(ctx.group, '0')
      const handler = createIngestHandler({ tools: { get: async (id) => (id === tool.id ? tool : undefined) }, stream, redis: ctx.redis, keys: ctx.keys })
      // the load child is one address standing for many senders (up to 256 sockets): the per-client connection cap
      // (64 by default) would close the rest, so it is raised to the child's socket count
      const http = await startHttpServer('127.0.0.1:0', createRouter([{ method: 'POST', path: '/webhooks/:toolId', handler }]), { maxConnectionsPerClient: 256 })
      ctx.state.url = http.url
      ctx.state.close = () => http.close()
    },
    async run(ctx) {
      const durationSeconds = ctx.durationSeconds ?? DEFAULT_LATENCY_SECONDS
      const latencies: number[] = []
      const stop = new AbortController()
      let settled = 0
      let accepted = Infinity
      let allSettled: () => void = () => {}
      const pipeline = runWebhookPipeline(ctx, {
        name, tool, batchSize: 100, telemetry: { metrics: createMetrics() }, events: Number.MAX_SAFE_INTEGER, stop: stop.signal,
        onSettled: (env) => {
          latencies.push(Date.now() - Date.parse(env.message.event.timestamp))
          if (++settled >= accepted) allSettled()
        },
      })
      const load = await runChild<LoadResult>(new URL('./latency-load-child.ts', import.meta.url), {
        url: ctx.state.url, path: `/webhooks/${tool.id}`, bodiesFile: ctx.state.bodiesFile, ratePerSec,
        durationMs: durationSeconds * 1000, idPrefix: `${ctx.keyPrefix}d-`, maxSockets: 256,
      }, undefined)
      accepted = load.accepted
      await Promise.race([
        new Promise<void>((resolve) => { allSettled = resolve; if (settled >= accepted) resolve() }),
        new Promise<void>((resolve) => setTimeout(resolve, 60_000)),
      ])
      stop.abort()
      await pipeline
      if (load.failed > 0) throw new Error(`${name}: ${load.failed} requests failed of ${load.sent} (${JSON.stringify(load.failures)})`)
      if (settled < accepted) throw new Error(`${name}: ${settled} settled of ${accepted} accepted within 60 s after the load`)
      // requests still unanswered 30 s after the load stopped: the box cannot take this rate; the figures then
      // cover only the events that got in (the rest would be later still), and the notes say so
      const saturated = load.unanswered > 0
      latencies.sort((a, b) => a - b)
      const p99 = quantile(latencies, 0.99)
      return {
        events: settled, rate: p99, seconds: load.seconds,
        extra: {
          p50Ms: quantile(latencies, 0.5), p99Ms: p99, maxMs: latencies[latencies.length - 1] ?? NaN,
          offeredPerSec: ratePerSec, achievedPerSec: Math.round(load.accepted / load.sendSeconds), seconds: durationSeconds,
          httpP99Ms: Math.round(load.httpP99Ms),
          ...(saturated ? { saturated: `${load.unanswered} of ${load.sent} requests unanswered 30 s after the load` } : {}),
          target: `p99 ≤ ${TARGET_P99_MS} ms: ${!saturated && p99 <= TARGET_P99_MS ? 'met' : 'MISSED'}`,
        },
      }
    },
    teardown: cleanup,
  })
}

/** Scenario (4): latency from ingest accept to stored at 1,000 events/s (target p99 ≤ 100 ms). */
export const latency1000 = latency(1000)
/** The same at 3,000 events/s. */
export const latency3000 = latency(3000)
