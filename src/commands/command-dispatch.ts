import type { StreamMessage } from '../core/envelope.js'
import type { CommandOutcome } from '../observability/command-metrics.js'
import { isPipelineError, PipelineError } from '../core/errors.js'
import { backoffDelayMs, nextRetry } from '../core/backoff.js'
import { parkEntry } from '../sources/delayed-retries.js'
import { isDeadLettered, ONLY_WORKER_FIELD, writeDeadLetter, type CommandLogClient } from './command-log.js'
import { validateCommandPayload, type CommandSchema } from './command-schema.js'
import type { CommandContext, ExecuteCommand, WorkerDefinition, WorkerLogger } from './command-worker.js'

/** Running totals of one worker, as `info()` reports them. */
export interface WorkerCounters {
  /** Commands whose handler succeeded. */
  handled: number
  /** Commands dead-lettered (permanent failure, retries used up, or delivered too often). */
  failed: number
  /** Retries made (one command retried three times counts three). */
  retried: number
  /** Entries for commands this worker has no handler for (acked, not errors). */
  skipped: number
  /** Handlers running right now. */
  inFlight: number
  /** Highest entry id this worker settled. */
  lastProcessedId: string | null
}

/** What `dispatchCommand` needs besides the message. */
export interface DispatchContext<S> {
  readonly worker: WorkerDefinition<S>
  /** Client for the DLQ writes. */
  readonly redis: CommandLogClient
  readonly dlqStream: string
  /** A replaying worker's record of the entries it dead-lettered (`commandDeadLetteredKey`), which its replay skips. */
  readonly deadLetteredKey?: string
  /** The worker's shutdown signal. */
  readonly signal: AbortSignal
  readonly logger: WorkerLogger
  readonly counters: WorkerCounters
  /** Handed to handlers as `ctx.execute`. */
  readonly execute: ExecuteCommand
  /** The worker's current state (its definition's, or the one a replay rebuilt). */
  readonly state: S
  /** Called after a command was handled or dead-lettered, or an entry skipped, and settled, e.g. to save a replay snapshot. */
  readonly afterHandled?: (streamId: string) => Promise<void>
  /** Told every handler run (`handled`/`failed`, with seconds), retry and dead letter, e.g. for metrics. */
  readonly onOutcome?: (worker: string, outcome: CommandOutcome, handlerSeconds?: number) => void
  /**
   * Parking of long retries: a retry of a non-sequential worker due later than `maxInlineDelayMs` is written to
   * `delayedKey` (for this worker only) and the entry acked, so it holds no handler slot while it waits; a
   * Retry-After longer than `maxRetryAfterMs` is cut to it. Without it every retry waits in its slot.
   */
  readonly park?: { readonly delayedKey: string; readonly maxInlineDelayMs: number; readonly maxRetryAfterMs: number }
}

/** The longest Retry-After a handler's failure is honoured for, unless the app says otherwise (1 h). */
export const DEFAULT_MAX_RETRY_AFTER_MS = 3_600_000

/** Field of a parked command's copy on the log: retries made so far. */
const ATTEMPTS_FIELD = 'attempts'
/** Field of a parked command's copy on the log: when its first try ran (epoch ms). */
const FIRST_ATTEMPT_FIELD = 'first_attempt_at'

/**
 * The payload of a command entry, parsed from its JSON text and checked against the route's schema. Throws a
 * permanent PipelineError (`COMMAND_PAYLOAD_INVALID`) naming the entry.
 *
 * @example
 * decodeCommandPayload('feature/process', route, '{"id":"f-1"}', '1-0') // { id: 'f-1' }
 */
export function decodeCommandPayload(command: string, route: { readonly schema?: CommandSchema }, raw: string | undefined, streamId: string): unknown {
  let payload: unknown
  try {
    payload = raw === undefined ? undefined : JSON.parse(raw)
  } catch {
    throw new PipelineError('permanent', 'COMMAND_PAYLOAD_INVALID',
      `command "${command}" (entry ${streamId}): field "payload" is not valid JSON; append commands with executeCommand()`)
  }
  return route.schema ? validateCommandPayload(command, route.schema, payload) : payload
}

/**
 * Creates zeroed counters for one worker run.
 *
 * @example
 * const counters = newCounters() // { handled: 0, failed: 0, … }
 */
export function newCounters(): WorkerCounters {
  return { handled: 0, failed: 0, retried: 0, skipped: 0, inFlight: 0, lastProcessedId: null }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  return new Promise((resolve) => {
    const done = (completed: boolean) => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      resolve(completed)
    }
    const onAbort = () => done(false)
    const timer = setTimeout(() => done(true), ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

// the hot path compares ids on every settle: numbers, not BigInt (ms and seq both stay below 2^53 in practice)
function isAfter(a: string, b: string): boolean {
  const ai = a.indexOf('-')
  const bi = b.indexOf('-')
  const am = Number(a.slice(0, ai))
  const bm = Number(b.slice(0, bi))
  return am > bm || (am === bm && Number(a.slice(ai + 1)) > Number(b.slice(bi + 1)))
}

function settled<S>(message: StreamMessage, ctx: DispatchContext<S>): void {
  message.settle()
  const last = ctx.counters.lastProcessedId
  if (last === null || isAfter(message.streamId, last)) ctx.counters.lastProcessedId = message.streamId
}

async function deadLetter<S>(message: StreamMessage, command: string, error: PipelineError, attempts: number, ctx: DispatchContext<S>): Promise<void> {
  let tries = 0
  for (;;) {
    try {
      await writeDeadLetter(ctx.redis, ctx.dlqStream, {
        worker: ctx.worker.name, command, payload: message.fields.payload, error, streamId: message.streamId, attempts,
      }, ctx.deadLetteredKey)
      break
    } catch (err) {
      // the DLQ write is what makes the failure durable: without it the entry stays pending and comes back
      tries += 1
      ctx.logger.warn({ worker: ctx.worker.name, err }, `worker "${ctx.worker.name}" cannot write to DLQ stream ${ctx.dlqStream}: ${(err as Error).message}; retrying`)
      if (!(await abortableSleep(Math.min(5000, 100 * 2 ** Math.min(tries, 6)), ctx.signal))) return
    }
  }
  ctx.counters.failed += 1
  ctx.onOutcome?.(ctx.worker.name, 'dead_lettered')
  ctx.logger.warn({ worker: ctx.worker.name, command, streamId: message.streamId, code: error.code, attempts },
    `worker "${ctx.worker.name}" dead-lettered command "${command}" (entry ${message.streamId}) after ${attempts} attempt(s): ${error.message}`)
  settled(message, ctx)
  // the state is unchanged, so a snapshot may move over it: else a flood of bad commands holds the log back
  await ctx.afterHandled?.(message.streamId)
}

function classify(err: unknown, worker: string, command: string): PipelineError {
  if (isPipelineError(err)) return err
  const text = err instanceof Error ? err.message : String(err)
  return new PipelineError('transient', 'COMMAND_HANDLER_FAILED',
    `worker "${worker}" failed to handle command "${command}": ${text}`, { cause: err })
}

// writes the command's next try to the delayed set, for this worker only, then acks the entry; a Redis that does
// not answer is waited for (the entry stays pending meanwhile, so nothing is lost on a crash)
async function parkRetry<S>(message: StreamMessage, retriesMade: number, firstAttemptAt: number, dueAtMs: number, ctx: DispatchContext<S>,
  delayedKey: string): Promise<boolean> {
  const fields = { ...message.fields, [ONLY_WORKER_FIELD]: ctx.worker.name, [ATTEMPTS_FIELD]: String(retriesMade), [FIRST_ATTEMPT_FIELD]: String(firstAttemptAt) }
  for (let tries = 1; ; tries += 1) {
    try {
      await parkEntry(ctx.redis, delayedKey, { stream: message.stream, from: message.streamId, fields }, dueAtMs)
      settled(message, ctx)
      return true
    } catch (err) {
      ctx.logger.warn({ worker: ctx.worker.name, err }, `worker "${ctx.worker.name}" cannot park a retry in ${delayedKey}: ${(err as Error).message}; retrying`)
      if (!(await abortableSleep(Math.min(5000, 100 * 2 ** Math.min(tries, 6)), ctx.signal))) return false
    }
  }
}

/**
 * Routes one command entry to the worker's handler and settles it when its fate is durable: handled, skipped
 * (no handler for that command), or written to the DLQ. Transient failures are retried with backoff, infrastructure
 * failures are retried until shutdown, permanent ones are dead-lettered at once. On shutdown an unfinished command
 * is left pending, so the group delivers it again after restart. Never rejects.
 *
 * @example
 * fromRedisStream(source).pipe(mergeMap((msg) => dispatchCommand(msg, ctx), worker.concurrency))
 */
export async function dispatchCommand<S>(message: StreamMessage, ctx: DispatchContext<S>): Promise<void> {
  const { worker, counters, signal } = ctx
  const command = message.fields.command
  const route = command === undefined ? undefined : worker.routes.get(command)
  const onlyFor = message.fields[ONLY_WORKER_FIELD]
  if (route === undefined || command === undefined || (onlyFor !== undefined && onlyFor !== worker.name)) {
    counters.skipped += 1
    settled(message, ctx)
    // the state is unchanged, so a snapshot may move over it: else the log behind a worker that only skips stays
    await ctx.afterHandled?.(message.streamId)
    return
  }
  counters.inFlight += 1
  try {
    // dead-lettered already, and the process died before the ack: its fate is durable, and the worker's replays skip
    // it, so running it again now (or dead-lettering it twice) would make the live state differ from the replayed one
    if (message.deliveryCount > 1 && ctx.deadLetteredKey !== undefined && await isDeadLettered(ctx.redis, ctx.deadLetteredKey, message.streamId)) {
      settled(message, ctx)
      await ctx.afterHandled?.(message.streamId)
      return
    }
    if (message.deliveryCount > worker.maxDeliveries) {
      await deadLetter(message, command, new PipelineError('permanent', 'COMMAND_MAX_DELIVERIES',
        `command "${command}" (entry ${message.streamId}) was delivered ${message.deliveryCount} times to worker "${worker.name}", ` +
        `more than maxDeliveries ${worker.maxDeliveries}; its handler probably crashes the process; fix it, then re-execute the command`), 0, ctx)
      return
    }
    let payload: unknown
    try {
      payload = decodeCommandPayload(command, route, message.fields.payload, message.streamId)
    } catch (err) {
      await deadLetter(message, command, err as PipelineError, 0, ctx)
      return
    }
    const entry = { id: message.streamId, timestamp: new Date(Number(message.streamId.split('-')[0])), deliveryCount: message.deliveryCount }
    // a parked retry comes back as a copy of the entry that says how far it got
    const retriesBefore = Number(message.fields[ATTEMPTS_FIELD] ?? 0) || 0
    const startedAt = Number(message.fields[FIRST_ATTEMPT_FIELD] ?? 0) || Date.now()
    for (let attempt = retriesBefore + 1; ; attempt += 1) {
      if (signal.aborted) return
      const context: CommandContext<S, unknown> = {
        worker: worker.name, command, payload, message: entry, state: ctx.state, signal, attempt, logger: ctx.logger, execute: ctx.execute,
        isReplay: false,
      }
      const runStarted = performance.now()
      try {
        await route.handle(context)
        ctx.onOutcome?.(worker.name, 'handled', (performance.now() - runStarted) / 1000)
        counters.handled += 1
        settled(message, ctx)
        await ctx.afterHandled?.(message.streamId)
        return
      } catch (err) {
        // a handler that gives up because we are shutting down has not failed: leave the entry for the next start
        if (signal.aborted) return
        ctx.onOutcome?.(worker.name, 'failed', (performance.now() - runStarted) / 1000)
        const error = classify(err, worker.name, command)
        const maxRetryAfterMs = ctx.park?.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS
        // our own dependency is down: wait and try again without spending the command's retries
        const retry = error.kind === 'infrastructure'
          ? { delayMs: Math.min(error.retryAfterMs ?? backoffDelayMs(worker.retry, Math.min(attempt, 30)), maxRetryAfterMs) }
          : error.kind === 'transient' ? nextRetry(worker.retry, attempt - 1, Date.now() - startedAt, error.retryAfterMs, maxRetryAfterMs) : undefined
        if (!retry) {
          await deadLetter(message, command, error, attempt, ctx)
          return
        }
        counters.retried += 1
        ctx.onOutcome?.(worker.name, 'retried')
        // a sequential worker keeps log order, so it waits in place; the others park what is due later
        if (ctx.park && !worker.sequential && error.kind === 'transient' && retry.delayMs > ctx.park.maxInlineDelayMs) {
          await parkRetry(message, attempt, startedAt, Date.now() + retry.delayMs, ctx, ctx.park.delayedKey)
          return
        }
        if (!(await abortableSleep(retry.delayMs, signal))) return
      }
    }
  } catch (err) {
    // a bug of ours: leave the entry pending rather than let one command stop the worker
    ctx.logger.warn({ worker: worker.name, err }, `worker "${worker.name}" could not dispatch entry ${message.streamId}: ${(err as Error)?.message}`)
  } finally {
    counters.inFlight -= 1
  }
}
