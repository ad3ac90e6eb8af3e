import { SpanKind } from '@opentelemetry/api'
import { concatMap, from, type MonoTypeOperatorFunction } from 'rxjs'
import type { Redis } from 'ioredis'
import { sql, type Kysely } from 'kysely'
import { DEFAULT_DLQ_POLICY, dlqSchedule, errorClass, type DlqPolicy } from '../core/dlq-policy.js'
import type { Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import type { Database } from '../db/database.js'
import { MessagingOperation, SpanAttributes, SpanNames } from '../observability/attributes.js'
import { endEventSpan, startEventSpan } from '../observability/event-spans.js'
import { DEFAULT_KEYS, type StreamKeys } from '../sources/keys.js'
import { batch } from './batch.js'
import { holdWhileDown, type HoldOptions } from './hold.js'

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
  /** Passed to the infrastructure hold (neither DLQ write went through). */
  readonly hold?: HoldOptions
  /**
   * Record a `webhook.dlq` span (PRODUCER, a child of the event's `webhook.process` span) per dead-lettered
   * event, with the failure's code as `error.type`. @defaultValue false (no span work)
   */
  readonly tracing?: boolean
}

// jsonb refuses \u0000; the DLQ stream keeps the exact bytes, the table a readable copy
const jsonForDb = (value: unknown) => JSON.stringify(value).replace(/\\u0000/g, '\\ufffd')

/**
 * Dead-letters failed envelopes: each goes to the DLQ stream (`webhook_events_dlq`, trimmed by MAXLEN) and to
 * table `webhook_dlq` (the original event, or the raw fields of an undecodable entry; error, error class and
 * code; status `pending` with `next_retry_at`, or `failed`), with an audit-log row, and gets outcome
 * `dead_lettered` so `settle` acks it. An event that fails again updates its open DLQ row (keeping its
 * retry count) instead of adding one. If neither write succeeds the envelope is held unacked, never dropped.
 *
 * @example
 * envelopes$.pipe(retryBackoff({ step }), toDLQ({ db, redis }), settle({ redis }))
 */
export function toDLQ<E extends Envelope>(options: ToDLQOptions): MonoTypeOperatorFunction<E> {
  const keys = options.keys ?? DEFAULT_KEYS
  const maxLen = options.maxLen ?? 100_000
  const policy = options.policy ?? DEFAULT_DLQ_POLICY
  const actor = options.actor ?? 'worker'

  const writeStream = async (failed: E[]) => {
    const pipe = options.redis.pipeline()
    for (const env of failed) {
      const { message, failure } = env as E & { failure: PipelineError }
      pipe.call('XADD', keys.dlqStream, 'MAXLEN', '~', maxLen, '*',
        'event', message.fields.event ?? JSON.stringify(message.fields), 'error', failure.message,
        'error_code', failure.code, 'error_class', errorClass(failure), 'stream_id', message.streamId,
        'failed_at', new Date().toISOString())
    }
    const results = (await pipe.exec()) ?? []
    const err = results.find(([e]) => e)?.[0]
    if (err) throw err
  }

  const writeTable = async (failed: E[]) => {
    const now = Date.now()
    const byEvent = new Map<string, E>() // one row per event per statement (ON CONFLICT may touch a row once)
    for (const env of failed) byEvent.set(env.message.event.id, env)
    const rows = [...byEvent.values()].map((env) => {
      const { message } = env
      const failure = env.failure as PipelineError
      const { status, nextRetryAt } = dlqSchedule(policy, message.event.retry_count, failure, now)
      return {
        event_id: message.event.id, tool_id: message.event.tool_id,
        event: jsonForDb(message.decodeError ? { undecodable: true, stream_id: message.streamId, fields: message.fields } : message.event),
        error: failure.message, error_class: errorClass(failure), error_code: failure.code,
        retry_count: message.event.retry_count, status, next_retry_at: nextRetryAt,
      }
    })
    await options.db.transaction().execute(async (trx) => {
      await trx.insertInto('webhook_dlq').values(rows)
        .onConflict((oc) => oc.column('event_id').where(sql.ref('status'), 'in', ['pending', 'retrying', 'failed']).doUpdateSet((eb) => ({
          error: eb.ref('excluded.error'), error_class: eb.ref('excluded.error_class'), error_code: eb.ref('excluded.error_code'),
          retry_count: eb.ref('excluded.retry_count'), status: eb.ref('excluded.status'), next_retry_at: eb.ref('excluded.next_retry_at'),
          failed_at: sql`now()`, updated_at: sql`now()`,
        }))).execute()
      await trx.insertInto('webhook_audit_log').values(rows.map((r) => ({
        event_id: r.event_id, entity: 'dlq', action: 'dead_lettered', actor,
        details: JSON.stringify({ error_code: r.error_code, error_class: r.error_class, retry_count: r.retry_count, status: r.status }),
      }))).execute()
    })
  }

  const deadLetter = async (envs: E[]): Promise<E[]> => {
    const failed = envs.filter((env) => env.failure && !env.outcome)
    if (failed.length === 0) return envs
    const spans = options.tracing ? failed.map((env) => startEventSpan(SpanNames.DLQ, env, SpanKind.PRODUCER, {
      [SpanAttributes.MESSAGING_DESTINATION_NAME]: keys.dlqStream, [SpanAttributes.MESSAGING_OPERATION_TYPE]: MessagingOperation.SEND,
      [SpanAttributes.ERROR_CODE]: (env.failure as PipelineError).code, [SpanAttributes.MESSAGING_BATCH_MESSAGE_COUNT]: failed.length,
    })) : undefined
    const [stream, table] = await Promise.allSettled([writeStream(failed), writeTable(failed)])
    const bothFailed = stream.status === 'rejected' && table.status === 'rejected'
    // the span is about writing the DLQ, so it is an error only when that write failed (the hold retries it)
    spans?.forEach((span) => endEventSpan(span, bothFailed ? { code: 'DLQ_UNAVAILABLE', message: 'both DLQ writes failed' } : undefined))
    if (stream.status === 'rejected' && table.status === 'rejected') {
      throw new PipelineError('infrastructure', 'DLQ_UNAVAILABLE',
        `dead-lettering ${failed.length} events failed on both the DLQ stream (${(stream.reason as Error).message}) and ` +
        `table webhook_dlq (${(table.reason as Error).message}); they stay unacked and are retried`, { cause: table.reason })
    }
    for (const env of failed) options.onDeadLettered?.(env, env.failure as PipelineError)
    const dead = new Set(failed)
    return envs.map((env) => (dead.has(env) ? { ...env, outcome: 'dead_lettered' as const } : env))
  }

  return (source) => source.pipe(
    batch({ maxSize: 200 }),
    concatMap((envs) => holdWhileDown(() => deadLetter(envs), options.hold)),
    concatMap((envs) => from(envs)),
  )
}
