import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { parseTool } from '../../src/core/tool.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { defineScenario, type Scenario } from '../define-scenario.js'
import { runWebhookPipeline } from './run-webhook-pipeline.js'

/** What a bench receiver saw. */
export interface Received { requests: number; connections: number; cpuUs: number }
/** A bench receiver: its URL, and `stop()`. */
export interface Receiver { readonly url: string; stop(): Promise<Received> }

/**
 * A loopback receiver in its own process (so it never shares the pipeline's event loop) that answers 200;
 * `stop()` reports the requests, connections and CPU time it saw.
 *
 * @example
 * const receiver = await startReceiver(); …; const { requests } = await receiver.stop()
 */
export async function startReceiver(): Promise<Receiver> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', new URL('./forward-receiver-child.ts', import.meta.url).pathname],
    { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  let onReceived: (r: Received) => void = () => {}
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('forward receiver: no "listening" line within 20 s')), 20_000)
    child.once('exit', (code) => reject(new Error(`forward receiver exited with ${code} before listening`)))
    lines.on('line', (line) => {
      if (line.startsWith('listening ')) { clearTimeout(timer); resolve(Number(line.slice(10))) }
      if (line.startsWith('received ')) {
        const [requests, connections, cpuUs] = line.slice(9).split(' ').map(Number)
        onReceived({ requests: requests ?? NaN, connections: connections ?? NaN, cpuUs: cpuUs ?? NaN })
      }
    })
  })
  return {
    url: `http://127.0.0.1:${port}/hook`,
    stop: () => new Promise((resolve) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); resolve({ requests: NaN, connections: NaN, cpuUs: NaN }) }, 5000)
      onReceived = (r) => { clearTimeout(timer); resolve(r) }
      child.kill('SIGTERM')
    }),
  }
}

function forward(concurrency: number, guarded = false): Scenario {
  const name = `forward${guarded ? '-guarded' : ''}-c${concurrency}`
  return defineScenario({
    name,
    description: `webhookPipeline, store_and_forward to a loopback receiver (200, own process), metrics on, batchSize 500, forward concurrency ${concurrency}` +
      (guarded ? ', with a circuit breaker per destination and every attempt written to webhook_deliveries (as the service runs it)' : ''),
    baseline: guarded ? `forward-c${concurrency}` : 'pipeline-store',
    // a forward costs ~0.3 ms of Node CPU: 10,000 keep a run near 5 s on 2 cores, long enough that the first
    // requests (connections, JIT warm-up) do not decide the rate, as the baseline's 20,000 do not
    events: 10_000,
    async setup(ctx) {
      const receiver = await startReceiver()
      ctx.state.receiver = receiver
      await ctx.preload()
    },
    async run(ctx) {
      const receiver = ctx.state.receiver as Receiver
      const tool = parseTool({ id: 'bench-tool', provider: 'github', secret: 'bench-secret', tenant_id: 'bench', processing_mode: 'store_and_forward', forward_url: receiver.url })
      let forwarded = 0
      const settled = await runWebhookPipeline(ctx, {
        name, tool, batchSize: 500, forwardConcurrency: concurrency, telemetry: { metrics: createMetrics() }, guarded,
        onSettled: (env) => { if (env.outcome === 'forwarded') forwarded++ },
      })
      if (forwarded !== ctx.events) throw new Error(`${name}: ${forwarded} forwarded of ${ctx.events}`)
      ctx.state.receiver = undefined
      const received = await receiver.stop()
      if (received.requests < ctx.events) throw new Error(`${name}: the receiver got ${received.requests} requests of ${ctx.events}`)
      // the receiver shares the cores with the pipeline, Redis and PostgreSQL: its CPU per request shows it stays cheap
      const receiverCpuUsPerRequest = Math.round(received.cpuUs / received.requests)
      return { events: settled, extra: { receiverConnections: received.connections, receiverCpuUsPerRequest } }
    },
    async teardown(ctx) {
      await (ctx.state.receiver as Receiver | undefined)?.stop()
    },
  })
}

/** Scenario (6): store_and_forward with 10 forwards in flight (the sink's default per destination). */
export const forward10 = forward(10)
/** The same with 50 in flight. */
export const forward50 = forward(50)
/** forward-c50 as the service runs it: breakers and the delivery-attempt log (#20); its baseline is forward-c50. */
export const forwardGuarded50 = forward(50, true)
