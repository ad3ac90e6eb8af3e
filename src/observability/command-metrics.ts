import { Counter, Histogram, type Registry } from 'prom-client'

/** What happened to one command in a worker, for `webhook_command_*`. */
export type CommandOutcome = 'handled' | 'failed' | 'retried' | 'dead_lettered'

/** The per-worker command metrics on one registry. */
export interface CommandMetrics {
  /**
   * Counts one outcome of worker `worker`: `handled` and `failed` are handler runs (with their duration in
   * seconds), `retried` a retry, `dead_lettered` a command written to the DLQ.
   */
  observe(worker: string, outcome: CommandOutcome, handlerSeconds?: number): void
}

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60]

/**
 * Registers the command workers' metrics on `registry` (the service's, next to `webhook_*`):
 * `webhook_command_handled_total`, `webhook_command_failures_total` (handler runs that threw),
 * `webhook_command_retries_total`, `webhook_command_dead_lettered_total` and the histogram
 * `webhook_command_handler_duration_seconds`, each with label `worker` (worker names are declared in code, so
 * the label is bounded).
 *
 * @example
 * const commandMetrics = createCommandMetrics(metrics.registry)
 * createApp({ redis, onCommandOutcome: commandMetrics.observe })
 */
export function createCommandMetrics(registry: Registry): CommandMetrics {
  const registers = [registry]
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ['worker'], registers })
  const counters: Record<CommandOutcome, Counter<'worker'>> = {
    handled: counter('webhook_command_handled_total', 'Commands a worker handled.'),
    failed: counter('webhook_command_failures_total', 'Handler runs that threw (each try counts).'),
    retried: counter('webhook_command_retries_total', 'Retries of failed commands.'),
    dead_lettered: counter('webhook_command_dead_lettered_total', 'Commands written to the command DLQ.'),
  }
  const duration = new Histogram({
    name: 'webhook_command_handler_duration_seconds', help: 'Duration of command handler runs.', labelNames: ['worker'], buckets: BUCKETS, registers,
  })
  return {
    observe(worker, outcome, handlerSeconds) {
      counters[outcome].inc({ worker })
      if (handlerSeconds !== undefined) duration.observe({ worker }, handlerSeconds)
    },
  }
}
