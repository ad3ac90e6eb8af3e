import { hostname } from 'node:os'
import type { Redis } from 'ioredis'
import { commandDelayedKey, commandDlqStream, commandReplayingKey, DEFAULT_COMMAND_STREAM, executeCommand, type ExecuteOptions } from './command-log.js'
import { DEFAULT_MAX_RETRY_AFTER_MS } from './command-dispatch.js'
import { DEFAULT_KEYS } from '../sources/keys.js'
import { startDelayedRetries } from '../sources/delayed-retries.js'
import { validateCommandPayload } from './command-schema.js'
import type { CommandOutcome } from '../observability/command-metrics.js'
import { loadCommandSnapshot } from './command-replay.js'
import { compareStreamIds, StreamClient } from '../sources/stream-client.js'
import { startStreamTrimmer, type StreamTrimmer } from '../sources/stream-trimmer.js'
import { WorkerRuntime, type WorkerInfo } from './command-runtime.js'
import type { WorkerDefinition, WorkerLogger } from './command-worker.js'
import { positiveInteger } from '../core/positive-integer.js'

/** Options of `createApp`. */
export interface CommandAppOptions {
  /** Your ioredis client. Each worker's reader `duplicate()`s two connections of its own; yours is never closed. */
  readonly redis: Redis
  /** The command log. @defaultValue "commands" (DLQ: "commands:dlq") */
  readonly stream?: string
  /** This process's consumer name in every worker's group; keep it stable across restarts and unique per process. @defaultValue os.hostname() */
  readonly consumer?: string
  /** Gets warnings: slow periodic runs, dead-lettered commands, read errors. @defaultValue console.warn */
  readonly logger?: WorkerLogger
  /** Commands a worker reads ahead (XREADGROUP COUNT and most unsettled entries). @defaultValue the worker's concurrency */
  readonly prefetch?: number
  /** XREADGROUP BLOCK (ms). @defaultValue 5000 */
  readonly blockMs?: number
  /** Entries pending this long (ms) in a dead process's consumer are claimed. @defaultValue 60000 */
  readonly claimIdleMs?: number
  /** On stop, how long (ms) running handlers and periodic runs may take to finish. @defaultValue 10000 */
  readonly drainTimeoutMs?: number
  /**
   * A retry due later than this (ms) is parked instead of waiting in its handler slot: the entry is acked, a copy
   * for that worker only waits in the sorted set `<stream>:delayed` and is appended to the log again when due
   * (sequential workers always wait in place, to keep log order). @defaultValue 5000
   */
  readonly maxInlineRetryDelayMs?: number
  /** The longest Retry-After (ms) of a handler's failure that is honoured; a longer one is cut to it. @defaultValue 3600000 (1 h) */
  readonly maxRetryAfterMs?: number
  /**
   * Trim the log every this many ms, group-aware like the webhook stream (STREAM_TRIM_INTERVAL): only entries
   * every worker's group has acked go, and none a replaying worker's snapshot does not cover yet (all of them
   * while such a worker has no snapshot), whether this app or another process runs that worker.
   * @defaultValue unset: the log is never trimmed
   */
  readonly trimIntervalMs?: number
  /** Newest entries each trim keeps even when acked (STREAM_TRIM_KEEP). @defaultValue 0 */
  readonly trimKeep?: number
  /** Told the number of entries each trim removed (e.g. for `webhook_stream_trimmed_entries_total`). */
  readonly onTrimmed?: (removed: number) => void
  /** Told every handler run (with its seconds), retry and dead letter per worker: pass `createCommandMetrics(…).observe`. */
  readonly onCommandOutcome?: (worker: string, outcome: CommandOutcome, handlerSeconds?: number) => void
}

/** Workers registered on one command log, started and stopped together. */
export interface CommandApp {
  /** The command log stream. */
  readonly stream: string
  /** The DLQ stream (`<stream>:dlq`). */
  readonly dlqStream: string
  /** Adds workers (names must be unique). Registered while the app runs, a worker starts at once. */
  register(...workers: WorkerDefinition<unknown>[]): Promise<void>
  /** Starts every worker: groups are created before it resolves, so commands executed after it are seen. */
  start(): Promise<void>
  /** Stops every worker: no new reads, running handlers get `drainTimeoutMs` to finish, acks flushed. Idempotent. */
  stop(): Promise<void>
  /** Appends a command to the log after checking it against the schema of every worker that handles it. */
  execute(command: string, payload?: unknown, options?: Omit<ExecuteOptions, 'schema'>): Promise<string>
  /** Status and counters of each worker, in registration order. */
  info(): WorkerInfo[]
}

const consoleLogger: WorkerLogger = { warn: (_obj, msg) => console.warn(`hookstream: ${msg}`) }

const positiveInt = positiveInteger.bind(undefined, 'createApp')

/**
 * Creates an app of command workers on one Redis stream. Each worker reads the whole log through its own consumer
 * group (named after the worker), so every worker sees every command and resumes where it left off.
 *
 * @example
 * const app = createApp({ redis, stream: 'commands' })
 * await app.register(features, reports)
 * await app.start()
 * await app.execute('feature/process', { id: 'f-1' })
 * process.once('SIGTERM', () => void app.stop())
 */
export function createApp(options: CommandAppOptions): CommandApp {
  if (!options?.redis || typeof options.redis.duplicate !== 'function') {
    throw new TypeError('createApp: "redis" must be an ioredis client (new Redis(url))')
  }
  const stream = options.stream ?? DEFAULT_COMMAND_STREAM
  if (typeof stream !== 'string' || stream === '') throw new TypeError(`createApp: "stream" must be a non-empty stream name; got ${JSON.stringify(stream)}`)
  const consumer = options.consumer ?? hostname()
  if (typeof consumer !== 'string' || consumer === '') throw new TypeError(`createApp: "consumer" must be a non-empty name; got ${JSON.stringify(consumer)}`)
  const logger = options.logger ?? consoleLogger
  if (typeof logger.warn !== 'function') throw new TypeError('createApp: "logger" must have a warn(obj, msg) method (a pino logger fits)')
  const prefetch = options.prefetch === undefined ? undefined : positiveInt('prefetch', options.prefetch, 1)
  const blockMs = positiveInt('blockMs', options.blockMs, 5000)
  const claimIdleMs = positiveInt('claimIdleMs', options.claimIdleMs, 60_000)
  const drainTimeoutMs = positiveInt('drainTimeoutMs', options.drainTimeoutMs, 10_000)
  if (options.trimIntervalMs !== undefined) positiveInt('trimIntervalMs', options.trimIntervalMs, 10_000)
  const park = {
    delayedKey: commandDelayedKey(stream),
    maxInlineDelayMs: positiveInt('maxInlineRetryDelayMs', options.maxInlineRetryDelayMs, 5000),
    maxRetryAfterMs: positiveInt('maxRetryAfterMs', options.maxRetryAfterMs, DEFAULT_MAX_RETRY_AFTER_MS),
  }
  let delayed: { close(): Promise<void> } | undefined
  const dlqStream = commandDlqStream(stream)
  const runtimes = new Map<string, WorkerRuntime<unknown>>()
  let running = false
  let stopping: Promise<void> | undefined
  let trimmer: StreamTrimmer | undefined
  const log = new StreamClient({ redis: options.redis, stream })
  // the oldest entry a replaying worker still needs: the one after its snapshot, or the whole log without one. The
  // replaying workers of other processes on this log count too (those whose group still exists: a destroyed group
  // no longer holds the log back)
  const replayFloor = async (): Promise<string | undefined> => {
    const recorded = (await options.redis.call('SMEMBERS', commandReplayingKey(stream))) as string[]
    const groups = new Set(recorded.length === 0 ? [] : (await log.info()).groups.map((g) => g.name))
    const names = new Set(recorded.filter((name) => groups.has(name)))
    for (const rt of runtimes.values()) if (rt.worker.replay) names.add(rt.worker.name)
    let floor: string | undefined
    for (const name of names) {
      const id = (await loadCommandSnapshot(options.redis, stream, name))?.last_id ?? '0-0'
      if (floor === undefined || compareStreamIds(id, floor) < 0) floor = id
    }
    return floor
  }
  const startTrimming = () => {
    if (options.trimIntervalMs === undefined || trimmer) return
    trimmer = startStreamTrimmer({
      stream: { redis: options.redis, trimSafe: async (o) => log.trimSafe({ ...o, floor: await replayFloor() }) },
      intervalMs: options.trimIntervalMs, keep: options.trimKeep ?? 0,
      logger: { warn: (obj, msg) => logger.warn(obj as Record<string, unknown>, msg), debug: () => {} },
      ...(options.onTrimmed ? { onTrimmed: options.onTrimmed } : {}),
    })
  }

  const execute = async (command: string, payload?: unknown, executeOptions: Omit<ExecuteOptions, 'schema'> = {}) => {
    for (const rt of runtimes.values()) {
      const schema = rt.worker.routes.get(command)?.schema
      if (schema) validateCommandPayload(command, schema, payload)
    }
    return executeCommand(options.redis, stream, command, payload, executeOptions)
  }
  const runtimeOf = (worker: WorkerDefinition<unknown>) => new WorkerRuntime(worker, {
    redis: options.redis, stream, dlqStream, consumer, logger, blockMs, claimIdleMs, drainTimeoutMs,
    prefetch: prefetch ?? worker.concurrency, onOutcome: options.onCommandOutcome, park,
    execute: (command, payload) => execute(command, payload),
  })

  return {
    stream,
    dlqStream,
    async register(...workers) {
      for (const worker of workers) {
        if (!worker || !(worker.routes instanceof Map)) throw new TypeError('app.register: pass workers made with defineWorker()')
        if (runtimes.has(worker.name)) {
          throw new RangeError(`app.register: a worker named "${worker.name}" is already registered; worker names must be unique (they name consumer groups)`)
        }
      }
      const added = workers.map((worker) => {
        const rt = runtimeOf(worker)
        runtimes.set(worker.name, rt)
        return rt
      })
      if (running) await Promise.all(added.map((rt) => rt.start()))
    },
    async start() {
      // no await without a stop to wait for: a stop() called right after start() must find the workers starting
      if (stopping) await stopping
      running = true
      stopping = undefined
      const results = await Promise.allSettled([...runtimes.values()].map((rt) => rt.start()))
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) {
        await this.stop()
        throw failed.reason
      }
      // stop() came while the workers were starting: it closed what it found, so start nothing more
      if (!running) return
      startTrimming()
      delayed ??= startDelayedRetries({
        redis: options.redis, keys: { ...DEFAULT_KEYS, delayed: park.delayedKey },
        onError: (err) => logger.warn({ err }, `command log ${stream}: moving due retries back failed: ${err.message}; trying again`),
      })
    },
    stop() {
      if (stopping) return stopping
      running = false
      const closing = Promise.all([trimmer?.close(), delayed?.close()])
      trimmer = undefined
      delayed = undefined
      stopping = Promise.allSettled([closing, ...[...runtimes.values()].map((rt) => rt.stop())]).then(() => undefined)
      return stopping
    },
    execute,
    info: () => [...runtimes.values()].map((rt) => rt.info()),
  }
}
