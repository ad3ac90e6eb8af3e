import type { Redis } from 'ioredis'
import { from, mergeMap } from 'rxjs'
import { fromRedisStream } from '../sources/from-redis-stream.js'
import { StreamClient } from '../sources/stream-client.js'
import { commandDeadLetteredKey, commandReplayingKey } from './command-log.js'
import { dispatchCommand, newCounters, type DispatchContext, type WorkerCounters } from './command-dispatch.js'
import { startPeriodic, type PeriodicInfo, type PeriodicRunner } from './command-periodic.js'
import { replayCommandLog, saveCommandSnapshot, type ReplayProgress } from './command-replay.js'
import type { ExecuteCommand, ResolvedReplay, WorkerDefinition, WorkerLogger } from './command-worker.js'

/** Where a worker is in its life. */
export type WorkerStatus = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed'

/** What `app.info()` reports per worker. */
export interface WorkerInfo {
  readonly name: string
  readonly description: string
  readonly status: WorkerStatus
  /** Command names the worker handles. */
  readonly commands: readonly string[]
  /** Highest log entry id the worker settled (handled, skipped or dead-lettered) since it started; null before the first. */
  readonly lastProcessedId: string | null
  readonly handled: number
  /** Dead-lettered commands. */
  readonly failed: number
  readonly retried: number
  /** Commands the worker has no handler for, acked and ignored. */
  readonly skipped: number
  readonly inFlight: number
  /** Periodic work facts (last run, its duration, runs, skipped ticks); null when the worker has none. */
  readonly periodic: PeriodicInfo | null
  /** The state rebuild of the last start (entries read, failed, up to which id, done); null without `replay`. */
  readonly replay: ReplayProgress | null
}

/** How a worker reads the log; the app fills these from its own options. */
export interface WorkerRuntimeOptions {
  readonly redis: Redis
  readonly stream: string
  readonly dlqStream: string
  readonly consumer: string
  readonly logger: WorkerLogger
  readonly prefetch: number
  readonly blockMs: number
  readonly claimIdleMs: number
  readonly drainTimeoutMs: number
  /** What handlers and periodic runs get as `ctx.execute`. */
  readonly execute: ExecuteCommand
  /** Told every handler run, retry and dead letter (see `createCommandMetrics`). */
  readonly onOutcome?: DispatchContext<unknown>['onOutcome']
  /** Where and when long retries are parked (see `DispatchContext.park`); unset: every retry waits in its slot. */
  readonly park?: DispatchContext<unknown>['park']
}

/**
 * One worker running on the command log: its consumer group (named after the worker), its dispatch loop with
 * bounded concurrency, and its periodic work. Create it with `new WorkerRuntime()`, then `start()`/`stop()`.
 * Apps do this for you; use it directly only to run a single worker without an app.
 *
 * @example
 * const rt = new WorkerRuntime(worker, { redis, stream: 'commands', dlqStream: 'commands:dlq', consumer: 'host-a',
 *   logger, prefetch: 16, blockMs: 5000, claimIdleMs: 60_000, drainTimeoutMs: 10_000,
 *   execute: (command, payload) => executeCommand(redis, 'commands', command, payload) })
 * await rt.start(); … ; await rt.stop()
 */
export class WorkerRuntime<S = unknown> {
  private status: WorkerStatus = 'idle'
  private counters: WorkerCounters = newCounters()
  private periodic: PeriodicRunner | undefined
  private stopping: Promise<void> | undefined
  private shutdown: AbortController | undefined
  private done: Promise<void> = Promise.resolve()
  private closed: Promise<void> = Promise.resolve()
  private unsubscribe: () => void = () => {}
  private state: S
  private replayProgress: ReplayProgress | null = null

  constructor(readonly worker: WorkerDefinition<S>, private readonly options: WorkerRuntimeOptions) {
    this.state = worker.state
  }

  /** Creates the worker's group when missing (at `startId`), then starts reading and the periodic schedule. */
  async start(): Promise<void> {
    if (this.status === 'starting' || this.status === 'running') return
    // no await without a stop to wait for: a stop() called right after start() must find the worker starting
    if (this.stopping) await this.stopping
    const { worker, options } = this
    this.status = 'starting'
    this.stopping = undefined
    this.counters = newCounters()
    const shutdown = new AbortController()
    this.shutdown = shutdown
    const replaying = commandReplayingKey(options.stream)
    try {
      // before the group exists, so a trim by any process on the log keeps what this worker's replays need from then on
      await options.redis.call(worker.replay ? 'SADD' : 'SREM', replaying, worker.name)
    } catch (err) {
      this.status = 'failed'
      throw new Error(`worker "${worker.name}" cannot record whether it replays in ${replaying}: ${(err as Error).message}`, { cause: err })
    }
    try {
      // create the group before reading, so a command appended once start() resolved is seen even with startId "$"
      await new StreamClient({ redis: options.redis, stream: options.stream }).ensureGroup(worker.name, worker.startId)
    } catch (err) {
      this.status = 'failed'
      throw new Error(`worker "${worker.name}" cannot create consumer group "${worker.name}" on stream ${options.stream}: ${(err as Error).message}`, { cause: err })
    }
    // stop() came while the group was being created: start nothing (a schedule started now would never stop)
    if (shutdown.signal.aborted) return
    const { replay } = worker
    if (replay) {
      const progress: ReplayProgress = { read: 0, failed: 0, deadLettered: 0, fromSnapshot: false, untilId: null, done: false }
      this.replayProgress = progress
      try {
        this.state = await replayCommandLog({
          redis: options.redis, stream: options.stream, worker: { ...worker, replay }, logger: options.logger, signal: shutdown.signal, progress,
        })
      } catch (err) {
        this.status = 'failed'
        throw err
      }
    }
    if (shutdown.signal.aborted) return
    let onClosed: () => void = () => {}
    this.closed = new Promise<void>((resolve) => { onClosed = resolve })
    const source$ = fromRedisStream({
      redis: options.redis,
      stream: options.stream,
      group: worker.name,
      consumer: options.consumer,
      batchSize: options.prefetch,
      maxInFlight: options.prefetch,
      blockMs: options.blockMs,
      claimIdleMs: options.claimIdleMs,
      drainTimeoutMs: options.drainTimeoutMs,
      // only used if the group vanishes later (Redis restarted without data): then read all that is there
      startId: '0',
      signal: shutdown.signal,
      onError: (err) => options.logger.warn({ worker: worker.name, err }, `worker "${worker.name}" reading ${options.stream}: ${err.message}`),
      onClosed: () => onClosed(),
    })
    const ctx = {
      worker, redis: options.redis, dlqStream: options.dlqStream, signal: shutdown.signal, logger: options.logger,
      counters: this.counters, execute: options.execute, state: this.state, onOutcome: options.onOutcome,
      ...(options.park ? { park: options.park } : {}),
      // the replay of the next start skips what this run dead-letters
      deadLetteredKey: replay ? commandDeadLetteredKey(options.stream, worker.name) : undefined,
      ...(replay && replay.snapshotEvery > 0 ? { afterHandled: this.snapshotter({ ...worker, replay }, this.state) } : {}),
    }
    this.done = new Promise<void>((resolve) => {
      const subscription = source$
        .pipe(mergeMap((message) => from(dispatchCommand(message, ctx)), worker.concurrency))
        .subscribe({
          complete: resolve,
          error: (err: Error) => {
            this.status = 'failed'
            options.logger.warn({ worker: worker.name, err }, `worker "${worker.name}" stopped: ${err.message}`)
            onClosed()
            resolve()
          },
        })
      this.unsubscribe = () => subscription.unsubscribe()
    })
    if (worker.periodic) this.periodic = startPeriodic(worker, shutdown.signal, options.logger, options.execute, this.state)
    this.status = 'running'
  }

  /**
   * Stops reading, fires the handlers' and periodic work's signal, waits up to `drainTimeoutMs` for running
   * handlers and the periodic run, acks what finished, and closes the worker's connections. Idempotent.
   */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping
    if (this.status !== 'running' && this.status !== 'starting') return Promise.resolve()
    this.status = 'stopping'
    const { drainTimeoutMs } = this.options
    this.stopping = (async () => {
      this.shutdown?.abort()
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, drainTimeoutMs) })
      await Promise.all([
        Promise.race([this.done, deadline]),
        this.periodic?.stop(drainTimeoutMs),
      ])
      clearTimeout(timer)
      // handlers still running past the deadline stay pending and are delivered again after restart
      this.unsubscribe()
      // the source acks what settled and closes its connections; it gives up on its own after drainTimeoutMs
      await Promise.race([this.closed, new Promise<void>((resolve) => { timer = setTimeout(resolve, drainTimeoutMs + 1000) })])
      clearTimeout(timer)
      this.status = 'stopped'
    })()
    return this.stopping
  }

  /** The worker's status and counters. */
  info(): WorkerInfo {
    const c = this.counters
    return {
      name: this.worker.name,
      description: this.worker.description,
      status: this.status,
      commands: [...this.worker.routes.keys()],
      lastProcessedId: c.lastProcessedId,
      handled: c.handled,
      failed: c.failed,
      retried: c.retried,
      skipped: c.skipped,
      inFlight: c.inFlight,
      periodic: this.periodic?.info() ?? null,
      replay: this.replayProgress ? { ...this.replayProgress } : null,
    }
  }

  // saves a snapshot after every `snapshotEvery` handled, dead-lettered or skipped commands; the worker is sequential,
  // so the state is exactly the log up to that entry. A failed save is logged and tried again `snapshotEvery` commands
  // later, not after every command: a state JSON cannot keep fails every time. It saves the state of its own run: a
  // handler that outlasted a stop must not save the state a restart rebuilt without its command.
  private snapshotter(worker: WorkerDefinition<S> & { readonly replay: ResolvedReplay<S> }, state: S): (streamId: string) => Promise<void> {
    let sinceLast = 0
    return async (streamId) => {
      if (++sinceLast < worker.replay.snapshotEvery) return
      sinceLast = 0
      try {
        await saveCommandSnapshot(this.options.redis, this.options.stream, worker, state, streamId)
      } catch (err) {
        this.options.logger.warn({ worker: worker.name, err }, `worker "${worker.name}" could not save its snapshot: ${(err as Error).message}`)
      }
    }
  }
}
