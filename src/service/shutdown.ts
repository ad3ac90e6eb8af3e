import type { ToolRegistry } from '../db/tool-registry.js'
import type { RunningHttpServer } from '../http/server.js'
import type { DlqPart } from './dlq.js'
import type { ServiceHealth, ServiceState } from './health.js'
import type { ServiceTelemetry } from './telemetry.js'
import type { WorkerPart } from './worker.js'

/** Closes one part; may be synchronous. */
export type Closer = () => Promise<unknown> | void

/**
 * Runs the closers one after the other, each after the previous finished; a closer that throws or rejects does
 * not stop the ones after it (the process is stopping: what is left must still be released).
 *
 * @example
 * await closeInOrder([() => scheduler.close(), () => sink.close()])
 */
export async function closeInOrder(closers: readonly Closer[]): Promise<void> {
  for (const close of closers) await Promise.resolve().then(close).catch(() => {})
}

/** What `shutdown` stops: the parts `startService` started (the roles' parts only where the role runs). */
export interface RunningService {
  readonly state: ServiceState
  readonly ingest?: RunningHttpServer
  readonly admin?: RunningHttpServer
  readonly worker?: WorkerPart
  readonly dlq?: DlqPart
  readonly tools: ToolRegistry
  readonly health: ServiceHealth
  readonly telemetry: ServiceTelemetry
}

/**
 * Stops a running service gracefully, in this order (each step after the previous one finished):
 *
 * 1. health says shutting down (not ready), so the orchestrator stops routing to this process;
 * 2. the ingest and admin listeners close: no new webhooks or admin calls, requests in progress are answered;
 * 3. the worker stops reading, and what is in flight finishes and is acked, for up to `shutdownTimeoutMs` (ms,
 *    WORKER_SHUTDOWN_TIMEOUT) + 1 s; past that the rest stays pending and is redelivered (`drained: false`);
 * 4. the pipeline is unsubscribed, then the delayed-retry schedulers, the forward sink and the trimmers close;
 * 5. the DLQ retry worker, then retention close;
 * 6. the tool registry stops refreshing;
 * 7. health stops, then its listener closes (it answered until here);
 * 8. metrics close, then tracing flushes its last spans (errors ignored).
 *
 * Errors of steps 4–5 are ignored so that the rest is still released. Redis and PostgreSQL belong to the caller
 * and stay open.
 *
 * @example
 * const { drained } = await shutdown(running, config.worker.shutdownTimeoutMs)
 */
export async function shutdown(running: RunningService, shutdownTimeoutMs: number): Promise<{ drained: boolean }> {
  const { state, ingest, admin, worker, dlq, tools, health, telemetry } = running
  state.shuttingDown = true
  await Promise.all([ingest?.close(), admin?.close()])
  let result: { drained: boolean } = { drained: true }
  if (worker) {
    worker.stopReading()
    const timeout = new Promise<{ drained: boolean }>((resolve) =>
      setTimeout(() => resolve({ drained: false }), shutdownTimeoutMs + 1000).unref())
    result = await Promise.race([worker.closed, timeout])
    await worker.close()
  }
  if (dlq) await dlq.close()
  await tools.close()
  health.health.close()
  await health.server.close()
  telemetry.metrics.close()
  await telemetry.tracing.shutdown().catch(() => {})
  telemetry.logger.info({ drained: result.drained }, 'hookstream stopped')
  return result
}
