import { PipelineError } from './errors.js'
import { decodeStreamEvent, type StreamEvent } from './event.js'

/**
 * The header fields of a v2 stream entry, in the order hookstream's producers write them; field `payload` (the
 * raw JSON text) comes last. Optional fields: `auth_context` and `metadata` (JSON objects as text),
 * `traceparent`. A producer outside hookstream writes the same fields (see the README's "Stream entry format").
 */
export const ENTRY_HEADER_FIELDS = ['id', 'tool_id', 'event_type', 'tenant_id', 'repository', 'timestamp', 'retry_count'] as const

/**
 * The fields of a v2 stream entry for `event`, ready for XADD after the stream name and `*`: the header
 * fields one by one, then `payload` = `payloadJson` when given (the payload's JSON text exactly as received,
 * already known to parse to `event.payload`), else `JSON.stringify(event.payload)`. The event is not validated
 * here; validate it first (`validateStreamEvent`).
 *
 * @example
 * redis.call('XADD', 'webhook_events', '*', ...entryFields(event, rawBody))
 */
export function entryFields(event: StreamEvent, payloadJson?: Buffer | string): (string | Buffer)[] {
  const fields: (string | Buffer)[] = [
    'id', event.id, 'tool_id', event.tool_id, 'event_type', event.event_type, 'tenant_id', event.tenant_id,
    'repository', event.repository, 'timestamp', event.timestamp, 'retry_count', String(event.retry_count ?? 0),
  ]
  if (event.auth_context !== undefined) fields.push('auth_context', JSON.stringify(event.auth_context))
  if (event.metadata !== undefined) fields.push('metadata', JSON.stringify(event.metadata))
  fields.push('payload', payloadJson ?? JSON.stringify(event.payload) ?? 'null')
  return fields
}

/**
 * Whether an entry's fields are in the v2 form (header fields beside a raw `payload`) rather than the seeds'
 * form (one field `event` holding the StreamEvent JSON).
 *
 * @example
 * isEntryV2({ id: 'd-1', payload: '{}' }) // true
 */
export function isEntryV2(fields: Readonly<Record<string, string>>): boolean {
  return fields.event === undefined && fields.payload !== undefined
}

/**
 * The raw payload JSON text of a v2 entry (field `payload`, as the producer wrote it), or `undefined` for an
 * entry in the seeds' form. The store sends this text to PostgreSQL as it is (`::jsonb`); nothing in Node parses it.
 *
 * @example
 * entryPayloadJson(message.fields) // '{"ref":"refs/heads/main",…}'
 */
export function entryPayloadJson(fields: Readonly<Record<string, string>>): string | undefined {
  return isEntryV2(fields) ? fields.payload : undefined
}

function bad(where: string, field: string, expected: string, got: string | undefined): never {
  const shown = got === undefined ? 'missing' : JSON.stringify(got.slice(0, 60))
  throw new PipelineError('permanent', 'INVALID_EVENT',
    `stream entry field "${field}" must be ${expected}; got ${shown}${where ? ` (${where})` : ''}`)
}

// parses an optional JSON object field on first read; a bad one fails the read with INVALID_EVENT
function lazyJson(target: object, name: 'payload' | 'auth_context' | 'metadata', text: string | undefined, where: string, objectOnly: boolean): void {
  let value: unknown
  let done = text === undefined
  Object.defineProperty(target, name, {
    enumerable: text !== undefined,
    get() {
      if (done) return value
      try {
        value = JSON.parse(text as string)
      } catch (err) {
        throw new PipelineError('permanent', 'INVALID_EVENT',
          `stream entry field "${name}" is not valid JSON${where ? ` (${where})` : ''}: ${(err as Error).message.slice(0, 120)}; ` +
          'producers must write the JSON text there', { cause: err })
      }
      if (objectOnly && (typeof value !== 'object' || value === null || Array.isArray(value))) {
        throw new PipelineError('permanent', 'INVALID_EVENT', `stream entry field "${name}" must hold a JSON object${where ? ` (${where})` : ''}`)
      }
      done = true
      return value
    },
  })
}

/**
 * Reads a v2 entry's header fields into a StreamEvent without parsing anything big: `payload`, `metadata` and
 * `auth_context` are parsed on first read (a getter; invalid JSON throws a permanent `INVALID_EVENT` there).
 * The header is checked as `validateStreamEvent` checks it; a bad header throws `INVALID_EVENT` naming the field.
 *
 * @example
 * const event = decodeEntryV2(message.fields, 'stream webhook_events, entry 1-0')
 * event.tool_id // read from the header; event.payload parses the payload now
 */
export function decodeEntryV2(fields: Readonly<Record<string, string>>, where = ''): StreamEvent {
  for (const field of ['id', 'event_type', 'tool_id', 'timestamp'] as const) {
    if (!fields[field]) bad(where, field, 'a non-empty string', fields[field])
  }
  for (const field of ['repository', 'tenant_id'] as const) {
    if (fields[field] === undefined) bad(where, field, 'present (empty when there is none)', undefined)
  }
  if ((fields.id as string).length > 255) bad(where, 'id', 'at most 255 characters', fields.id)
  const retryCount = fields.retry_count === undefined ? 0 : Number(fields.retry_count)
  if (!Number.isInteger(retryCount) || retryCount < 0) bad(where, 'retry_count', 'a non-negative integer', fields.retry_count)
  if (Number.isNaN(Date.parse(fields.timestamp as string))) bad(where, 'timestamp', 'an ISO 8601 date', fields.timestamp)
  const event = {
    id: fields.id, event_type: fields.event_type, repository: fields.repository, tenant_id: fields.tenant_id,
    tool_id: fields.tool_id, timestamp: fields.timestamp, retry_count: retryCount,
  }
  lazyJson(event, 'payload', fields.payload, where, false)
  lazyJson(event, 'auth_context', fields.auth_context, where, true)
  lazyJson(event, 'metadata', fields.metadata, where, true)
  return event as unknown as StreamEvent
}

/**
 * Decodes a stream entry in either form: v2 (header fields and a raw `payload`, see `decodeEntryV2`) or the
 * seeds' (field `event` = the StreamEvent JSON, see `decodeStreamEvent`; a field `retry_count` beside it wins).
 * Throws a permanent PipelineError (`UNDECODABLE_ENTRY` or `INVALID_EVENT`) naming the field and `where`.
 *
 * @example
 * const event = decodeEntry(toRecord(fields), 'stream webhook_events, entry 1-0')
 */
export function decodeEntry(fields: Readonly<Record<string, string>>, where = ''): StreamEvent {
  if (isEntryV2(fields)) return decodeEntryV2(fields, where)
  const event = decodeStreamEvent(fields.event, where)
  // a DLQ row kept raw is re-queued byte for byte, its new retry count beside it
  const retryCount = fields.retry_count === undefined ? NaN : Number(fields.retry_count)
  return Number.isInteger(retryCount) && retryCount >= 0 ? { ...event, retry_count: retryCount } : event
}

/**
 * The StreamEvent JSON of an entry with the payload's own text in it, for a forward body: for a v2 entry the
 * header is serialized and the raw `payload` text spliced in as received; for the seeds' form `undefined`
 * (the `event` field is that text already). Throws `INVALID_EVENT` when `metadata`/`auth_context` are not JSON.
 *
 * @example
 * entryEventJson(message.fields, message.event) // '{"id":"d-1",…,"payload":{"ref":…}}'
 */
export function entryEventJson(fields: Readonly<Record<string, string>>, event: StreamEvent): string | undefined {
  const payloadJson = entryPayloadJson(fields)
  if (payloadJson === undefined) return undefined
  const head = JSON.stringify({
    id: event.id, event_type: event.event_type, repository: event.repository, tenant_id: event.tenant_id, tool_id: event.tool_id,
    auth_context: event.auth_context, metadata: event.metadata, timestamp: event.timestamp, retry_count: event.retry_count, payload: 0,
  })
  // payload last, so the text ends with `"payload":0}`
  return `${head.slice(0, -2)}${payloadJson}}`
}

/**
 * The text that stands for an entry where the event must be kept byte for byte (a DLQ row kept raw, the DLQ
 * stream): the seeds' `event` field as it is; for a v2 entry its StreamEvent JSON with the payload text as
 * received (`entryEventJson`); the raw fields as JSON when the entry is undecodable or its header fields are.
 *
 * @example
 * Buffer.from(entryText(message.fields, message.decodeError ? undefined : message.event))
 */
export function entryText(fields: Readonly<Record<string, string>>, event: StreamEvent | undefined): string {
  if (fields.event !== undefined) return fields.event
  if (event === undefined) return JSON.stringify(fields)
  try {
    return entryEventJson(fields, event) ?? JSON.stringify(fields)
  } catch {
    return JSON.stringify(fields)
  }
}
