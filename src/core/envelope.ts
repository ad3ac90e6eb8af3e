import { ROOT_CONTEXT, trace, TraceFlags, type Context } from '@opentelemetry/api'
import type { StreamEvent } from './event.js'
import { PipelineError } from './errors.js'

/** One stream entry as the source hands it out, with its ack handle attached. */
export interface StreamMessage {
  /** The stream the entry was read from (a partition name when streams are partitioned). */
  readonly stream: string
  /** The entry id, e.g. `"1718000000000-0"`. */
  readonly streamId: string
  /**
   * The decoded event (decoded on first access). When `decodeError` is set this is a placeholder (id `undecodable:<streamId>`, the
   * rest taken from whatever could be read) and `fields` holds what was really on the stream.
   */
  readonly event: StreamEvent
  /** The entry's raw fields as read from Redis. */
  readonly fields: Readonly<Record<string, string>>
  /** W3C traceparent stored with the entry by ingest, when there was one. */
  readonly traceparent?: string
  /** How many times the group delivered this entry (1 on the first read). */
  readonly deliveryCount: number
  /** When this process read the entry (ms since epoch), for processing-time metrics. */
  readonly readAtMs: number
  /** Set when the entry could not be decoded; the envelope starts failed and goes to the DLQ. */
  readonly decodeError?: PipelineError
  /** Marks the entry done; the source batches the XACK and frees one credit. Settling steps only, once. */
  readonly settle: () => void
  /**
   * Releases the entry for redelivery without acking it: frees its credit and makes it claimable at once, so
   * the source hands it out again. For a message a step cannot decide now; `settle` calls it for a message a
   * custom operator dropped. After `nack`, `settle()` of the same message does nothing (and the reverse).
   */
  readonly nack: () => void
}

/**
 * How an event ended, set by the step that decided it; later steps pass the envelope through to the settle
 * step. `parked` means it waits in the delayed-retry set and comes back on the stream when due; `processed` means
 * a `runWorker` process function finished it.
 */
export type Outcome = 'stored' | 'transformed' | 'forwarded' | 'duplicate' | 'dead_lettered' | 'parked' | 'processed'

/** What every operator receives and passes on. Operators derive new envelopes, never mutate one. */
export interface Envelope {
  readonly message: StreamMessage
  /** Retries of the current step so far (for retryBackoff); carried through a parked retry in field `attempts`. */
  readonly attempts: number
  /** When the first attempt of the current step started (ms since epoch), for the policy's max elapsed time. */
  readonly firstAttemptAt?: number
  /** Set once; later steps pass the envelope through untouched, up to toDLQ. */
  readonly failure?: PipelineError
  /** Set once the event's fate is decided; later steps pass the envelope through untouched. */
  readonly outcome?: Outcome
  /** Trace context this event's spans start from (the ingest span's, when the entry carried a traceparent). */
  readonly trace: Context
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/**
 * Reads a W3C `traceparent` header value into a context whose remote parent is that span.
 * Returns the root context when the value is missing or malformed.
 *
 * @example
 * contextFromTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
 */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  const m = traceparent ? TRACEPARENT.exec(traceparent) : null
  if (!m || /^0+$/.test(m[1] as string) || /^0+$/.test(m[2] as string)) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: m[1] as string,
    spanId: m[2] as string,
    traceFlags: parseInt(m[3] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  })
}

/**
 * Wraps a message in a fresh envelope: no attempts yet, failed already when the entry was undecodable,
 * trace context from the entry's traceparent.
 *
 * @example
 * fromRedisStream(source).pipe(map(toEnvelope), dedupe({ redis }))
 */
export function toEnvelope(message: StreamMessage): Envelope {
  const attempts = Number(message.fields.attempts ?? 0)
  const firstAttemptAt = Number(message.fields.first_attempt_at ?? NaN)
  return {
    message,
    attempts: Number.isInteger(attempts) && attempts > 0 ? attempts : 0,
    ...(Number.isFinite(firstAttemptAt) ? { firstAttemptAt } : {}),
    trace: contextFromTraceparent(message.traceparent),
    ...(message.decodeError ? { failure: message.decodeError } : {}),
  }
}

/**
 * The transient failure of an event whose step ran over the processing time limit (WORKER_PROCESSING_TIMEOUT).
 *
 * @example
 * processingTimeout(env.message, 300_000).code // "PROCESSING_TIMEOUT"
 */
export function processingTimeout(message: StreamMessage, limitMs: number): PipelineError {
  return new PipelineError('transient', 'PROCESSING_TIMEOUT',
    `processing event ${message.event.id} (stream ${message.stream}, entry ${message.streamId}) took longer than ${limitMs} ms; ` +
    'it is retried, then dead-lettered. Raise WORKER_PROCESSING_TIMEOUT if the step is slow but alive')
}

/** Whether a step should leave the envelope alone: it failed already, or its outcome is decided. */
export function isDone(env: Envelope): boolean {
  return env.failure !== undefined || env.outcome !== undefined
}
