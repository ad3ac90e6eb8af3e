import { randomUUID } from 'node:crypto'
import { PipelineError } from './errors.js'

/**
 * One webhook event as it travels on the stream (field `event` of a stream entry, as JSON). This shape is part
 * of the contract: producers outside hookstream write it too.
 */
export interface StreamEvent {
  /** The provider's delivery id when it sends one, otherwise a UUID. Primary key of `webhook_events`. */
  readonly id: string
  /** `webhook.<provider>.<event>`, e.g. `webhook.github.push`. */
  readonly event_type: string
  /** `owner/name` where the provider has one, otherwise an empty string. */
  readonly repository: string
  readonly tenant_id: string
  readonly tool_id: string
  readonly payload: unknown
  /** Who sent it, as verified at ingest (provider, verification scheme). Kept through DLQ re-drives. */
  readonly auth_context?: Readonly<Record<string, unknown>>
  /** Received headers (minus secrets) and other facts about the delivery. */
  readonly metadata?: Readonly<Record<string, unknown>>
  /** When hookstream accepted it, ISO 8601. */
  readonly timestamp: string
  /** How many times the DLQ re-enqueued it. */
  readonly retry_count: number
}

function fail(where: string, field: string, expected: string, got: unknown): never {
  const shown = got === undefined ? 'undefined' : JSON.stringify(got)?.slice(0, 60) ?? String(got)
  throw new PipelineError('permanent', 'INVALID_EVENT',
    `event field "${field}" must be ${expected}; got ${shown}${where ? ` (${where})` : ''}`)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Checks that `value` has the StreamEvent shape and returns it typed. Throws a permanent PipelineError with
 * code `INVALID_EVENT` naming the first bad field; `where` (e.g. `stream webhook_events, entry 1-0`) is added
 * to the message.
 *
 * @example
 * const event = validateStreamEvent(JSON.parse(raw), 'stream webhook_events, entry 1718000000000-0')
 */
export function validateStreamEvent(value: unknown, where = ''): StreamEvent {
  if (!isRecord(value)) fail(where, '(root)', 'a JSON object', value)
  for (const field of ['id', 'event_type', 'tool_id', 'timestamp'] as const) {
    const v = value[field]
    if (typeof v !== 'string' || v.length === 0) fail(where, field, 'a non-empty string', v)
  }
  for (const field of ['repository', 'tenant_id'] as const) {
    if (typeof value[field] !== 'string') fail(where, field, 'a string (empty when there is none)', value[field])
  }
  if ((value.id as string).length > 255) fail(where, 'id', 'at most 255 characters', `${(value.id as string).slice(0, 20)}…`)
  if (!('payload' in value)) fail(where, 'payload', 'present (any JSON value)', undefined)
  const retry = value.retry_count ?? 0
  if (typeof retry !== 'number' || !Number.isInteger(retry) || retry < 0) {
    fail(where, 'retry_count', 'a non-negative integer', retry)
  }
  if (Number.isNaN(Date.parse(value.timestamp as string))) fail(where, 'timestamp', 'an ISO 8601 date', value.timestamp)
  for (const field of ['auth_context', 'metadata'] as const) {
    if (value[field] !== undefined && !isRecord(value[field])) fail(where, field, 'an object when present', value[field])
  }
  return { ...(value as unknown as StreamEvent), retry_count: retry }
}

/**
 * Parses the JSON text of a stream entry's `event` field and validates it (see `validateStreamEvent`).
 *
 * @example
 * decodeStreamEvent('{"id":"d-1", …}', 'stream webhook_events, entry 1-0')
 */
export function decodeStreamEvent(json: string | undefined, where = ''): StreamEvent {
  if (json === undefined) {
    throw new PipelineError('permanent', 'UNDECODABLE_ENTRY',
      `stream entry has no "event" field and no "payload" field${where ? ` (${where})` : ''}; producers must XADD the v2 fields ` +
      '(header fields and "payload", see the README\'s stream entry format) or a field "event" holding the StreamEvent JSON')
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch (err) {
    throw new PipelineError('permanent', 'UNDECODABLE_ENTRY',
      `stream entry field "event" is not valid JSON${where ? ` (${where})` : ''}: ${(err as Error).message}`, { cause: err })
  }
  return validateStreamEvent(parsed, where)
}

/** A delivery id (the event id a sender chose): 1–200 printable ASCII characters without spaces. Ingest checks it too. */
export const DELIVERY_ID_PATTERN = /^[\x21-\x7e]{1,200}$/

/** An event as a producer writes it: the StreamEvent fields, where `id`, `timestamp`, `retry_count`, `repository` and `tenant_id` may be left out. */
export type StreamEventInput = Omit<StreamEvent, 'id' | 'timestamp' | 'retry_count' | 'repository' | 'tenant_id'> &
  Partial<Pick<StreamEvent, 'id' | 'timestamp' | 'retry_count' | 'repository' | 'tenant_id'>>

/**
 * Completes and checks an event written by a producer (`hookstream produce`, `createProducer`): a missing `id`
 * becomes a UUID, `timestamp` now, `retry_count` 0, `repository` "" and `tenant_id` "default"; then the shape is
 * validated and a given `id` must be a delivery id (DELIVERY_ID_PATTERN). Throws a permanent PipelineError
 * (`INVALID_EVENT`) naming the field and `where`.
 *
 * @example
 * completeStreamEvent({ event_type: 'billing.paid', tool_id: 'billing', payload: { amount: 5 } }, 'events.ndjson line 3')
 */
export function completeStreamEvent(input: unknown, where = ''): StreamEvent {
  if (!isRecord(input)) fail(where, '(root)', 'a JSON object', input)
  if (input.id !== undefined && (typeof input.id !== 'string' || !DELIVERY_ID_PATTERN.test(input.id))) {
    fail(where, 'id', 'a delivery id of 1–200 printable characters without spaces (or left out for a UUID)', input.id)
  }
  return validateStreamEvent({
    id: randomUUID(), timestamp: new Date().toISOString(), retry_count: 0, repository: '', tenant_id: 'default', ...input,
  }, where)
}
