import { SpanKind } from '@opentelemetry/api'
import type { Redis } from 'ioredis'
import type { Kysely } from 'kysely'
import { DEFAULT_DLQ_POLICY, dlqSchedule, errorClass, type DlqPolicy } from '../core/dlq-policy.js'
import type { Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import { entryText } from '../core/stream-entry.js'
import type { Database } from '../db/database.js'
import { classifyDatabaseError } from '../db/database-error.js'
import { writeDeadLetters, type DeadLetterRow, type DlqStatusListener } from '../db/dlq-store.js'
import { identityOf } from '../db/event-identity.js'
import { MessagingOperation, SpanAttributes, SpanNames } from '../observability/attributes.js'
import { endEventSpan, startEventSpan } from '../observability/event-spans.js'
import { DEFAULT_KEYS, type StreamKeys } from '../sources/keys.js'
import { batchStep, type BatchStage } from './batch-step.js'
import type { HoldOptions } from './hold.js'

/** Options of `toDLQ`. */
export interface ToDLQOptions {
  readonly db: Kysely<Database>
  readonly redis: Pick<Redis, 'pipeline'>
  /** @defaultValue DEFAULT_KEYS (stream `webhook_events_dlq`) */
  readonly keys?: StreamKeys
  /** Approximate cap on the DLQ stream (`MAXLEN ~`). @defaultValue 100000 */
  readonly maxLen?: number
  /** Re-queue schedule written into `next_retry_at`. @defaultValue DEFAULT_DLQ_POLICY */
  readonly policy?: DlqPolicy
  /** Who dead-lettered, for the audit log. @defaultValue "worker" */
  readonly actor?: string
  /** Told about every dead-lettered envelope (for metrics and logs). */
  readonly onDeadLettered?: (env: Envelope, failure: PipelineError) => void
  /** Told how many rows became `failed` (rounds used up, poison, undecodable) once committed (for metrics). */
  readonly onStatusChange?: DlqStatusListener
  /** Passed to the infrastructure hold (neither DLQ write went through). */
  readonly hold?: HoldOptions
  /**
   * Record a `webhook.dlq` span (PRODUCER, a child of the event's `webhook.process` span) per dead-lettered
   * event, with the failure's code as `error.type`. @defaultValue false (no span work)
   */
  readonly tracing?: boolean
}


const DLQ_ROWS_PER_STATEMENT = 200

// PostgreSQL's text holds no NUL: an id or tool id with one (a library producer's entry; its bytes go to
// event_raw) and an error quoting it are kept with the NUL written out, or no row could ever list them
const textColumn = (text: string) => (text.includes('\u0000') ? text.replaceAll('\u0000', '\\u0000') : text)

// a row PostgreSQL refuses even raw is not the event's fault: hold it rather than ack it unlisted
const asHold = (failure: PipelineError) => (failure.kind === 'infrastructure' ? failure
  : new PipelineError('infrastructure', 'DLQ_UNAVAILABLE', `${failure.message}; kept unacked until webhook_dlq takes it`, { cause: failure }))


/**
 * Writes failed envelopes as dead letters, as `toDLQ` does (DLQ stream, `webhook_dlq` row, audit row, `onDeadLettered`),
 * for a step that dead-letters beside its own work (`fanOut` for a destination's filter that failed): each envelope
 * is written with its `failure`, and passes on as it was. Resolves once the table rows are committed; rejects with
 * an infrastructure `DLQ_UNAVAILABLE` when they could not be (hold the batch: nothing may be acked).
 *
 * @example
 * const deadLetter = deadLetterWriter({ db, redis, keys, actor: 'worker:c1' })
 * await deadLetter([{ ...env, failure }])
 */
export function deadLetterWriter<E extends Envelope>(options: ToDLQOptions): (failed: readonly E[]) => Promise<void> {
  const keys = options.keys ?? DEFAULT_KEYS
  const maxLen = options.maxLen ?? 100_000
  const policy = options.policy ?? DEFAULT_DLQ_POLICY
  const actor = options.actor ?? 'worker'

  const writeStream = async (failed: readonly E[]) => {
    const pipe = options.redis.pipeline()
    for (const env of failed) {
      const { message, failure } = env as E & { failure: PipelineError }
      pipe.call('XADD', keys.dlqStream, 'MAXLEN', '~', maxLen, '*',
        'event', entryText(message.fields, message.decodeError ? undefined : message.event), 'error', failure.message,
        'error_code', failure.code, 'error_class', errorClass(failure), 'stream_id', message.streamId,
        'failed_at', new Date().toISOString())
    }
    const results = (await pipe.exec()) ?? []
    const err = results.find(([e]) => e)?.[0]
    if (err) throw err
  }

  const rowOf = (env: E): DeadLetterRow => {
    const { message } = env
    const failure = env.failure as PipelineError
    const { status, nextRetryAt } = dlqSchedule(policy, message.event.retry_count, failure, Date.now())
    const row: DeadLetterRow = {
      event_id: textColumn(message.event.id), event_format: 'jsonb', tool_id: textColumn(message.event.tool_id),
      error: textColumn(failure.message), error_class: errorClass(failure), error_code: failure.code,
      retry_count: message.event.retry_count, status, next_retry_at: nextRetryAt,
    }
    let event: string
    try {
      event = JSON.stringify(message.decodeError ? { undecodable: true, stream_id: message.streamId, fields: message.fields } : message.event)
    } catch {
      return rawRow(row, env) // too deep for JSON.stringify: keep the entry's own bytes
    }
    // jsonb has no NUL: keep such an event raw, losslessly, rather than a changed copy
    return event.includes('\\u0000') ? rawRow(row, env) : { ...row, event, event_raw: null, event_format: 'jsonb' }
  }
  const rawRow = (row: DeadLetterRow, env: E): DeadLetterRow => ({
    ...row, event: null, event_format: 'raw',
    event_raw: Buffer.from(entryText(env.message.fields, env.message.decodeError ? undefined : env.message.event)),
  })

  const insertRows = (rows: readonly DeadLetterRow[]) => writeDeadLetters(options.db, rows, actor, options.onStatusChange)

  // one row per event per statement (ON CONFLICT may touch a row once); the batch in one transaction, and
  // when PostgreSQL refuses it, row by row, so one bad row never sinks its neighbours; a row jsonb cannot
  // hold is kept raw. Only infrastructure failures reach the caller (hold: nothing is acked).
  const writeTable = async (failed: readonly E[]) => {
    const byEvent = new Map<string, E>()
    for (const env of failed) byEvent.set(identityOf(env.message.event), env)
    const entries = [...byEvent.values()].map((env) => ({ env, row: rowOf(env) }))
    // a read's batch may hold thousands of failures: 200 rows per statement stays far below 65,535 bind parameters
    for (let i = 0; i < entries.length; i += DLQ_ROWS_PER_STATEMENT) await writeRows(entries.slice(i, i + DLQ_ROWS_PER_STATEMENT))
  }
  const writeRows = async (entries: readonly { env: E; row: DeadLetterRow }[]) => {
    const what = (n: number) => `writing ${n} rows to webhook_dlq`
    try {
      return await insertRows(entries.map((e) => e.row))
    } catch (err) {
      if (classifyDatabaseError(err, what(entries.length)).kind !== 'permanent') throw classifyDatabaseError(err, what(entries.length))
    }
    for (const { env, row } of entries) {
      try {
        await insertRows([row])
        continue
      } catch (err) {
        const failure = classifyDatabaseError(err, what(1))
        if (failure.kind !== 'permanent' || row.event_format === 'raw') throw asHold(failure)
      }
      await insertRows([rawRow(row, env)]).catch((err: unknown) => { throw asHold(classifyDatabaseError(err, what(1))) })
    }
  }

  return async (failed) => {
    const spans = options.tracing ? failed.map((env) => startEventSpan(SpanNames.DLQ, env, SpanKind.PRODUCER, {
      [SpanAttributes.MESSAGING_DESTINATION_NAME]: keys.dlqStream, [SpanAttributes.MESSAGING_OPERATION_TYPE]: MessagingOperation.SEND,
      [SpanAttributes.ERROR_CODE]: (env.failure as PipelineError).code, [SpanAttributes.MESSAGING_BATCH_MESSAGE_COUNT]: failed.length,
    })) : undefined
    const [, table] = await Promise.allSettled([writeStream(failed), writeTable(failed)])
    // the table row is what every tool lists: without it the events stay unacked, whatever the stream got
    spans?.forEach((span) => endEventSpan(span, table.status === 'rejected' ? { code: 'DLQ_UNAVAILABLE', message: 'the webhook_dlq write failed' } : undefined))
    if (table.status === 'rejected') {
      const reason = table.reason as Error
      throw new PipelineError('infrastructure', 'DLQ_UNAVAILABLE',
        `dead-lettering ${failed.length} events failed on table webhook_dlq (${reason.message}); they stay unacked and are retried`, { cause: reason })
    }
    for (const env of failed) options.onDeadLettered?.(env, env.failure as PipelineError)
  }
}

/**
 * Dead-letters failed envelopes: each goes to the DLQ stream (`webhook_events_dlq`, trimmed by MAXLEN) and to
 * table `webhook_dlq` (the original event, or the raw fields of an undecodable entry; error, error class and
 * code; status `pending` with `next_retry_at`, or `failed`), with an audit-log row, and gets outcome
 * `dead_lettered` so `settle` acks it — only once its table row is durable. A batch PostgreSQL refuses is
 * written row by row; an event jsonb cannot hold (a lone surrogate, nesting too deep) is kept byte for byte
 * in `event_raw` (`event_format` `raw`). An event that fails again updates its open DLQ row (keeping its
 * retry count) instead of adding one. PostgreSQL down holds the envelopes unacked, never dropped.
 *
 * @example
 * batches$.pipe(retryBackoff({ step }), toDLQ({ db, redis }), settle())
 */
export function toDLQ<E extends Envelope>(options: ToDLQOptions): BatchStage<E> {
  const write = deadLetterWriter<E>(options)
  const deadLetter = async (envs: readonly E[], failed: readonly E[]): Promise<readonly E[]> => {
    await write(failed)
    const dead = new Set(failed)
    return envs.map((env) => (dead.has(env) ? { ...env, outcome: 'dead_lettered' as const } : env))
  }

  const dies = (env: E) => env.failure !== undefined && env.outcome === undefined
  // a batch without a failure (the usual case) passes at once
  return batchStep((envs) => {
    const failed = envs.filter(dies)
    return failed.length === 0 ? envs : deadLetter(envs, failed)
  }, options.hold ? { hold: options.hold } : {})
}
