import type { IncomingMessage, ServerResponse } from 'node:http'
import { isPipelineError } from '../core/errors.js'
import { sendJson, type RouteHandler } from './server.js'
import { unstorableJson } from './storable-json.js'

/** The admin API's error answer: `{ error: { code, message } }` with the HTTP status of the code. */
export class AdminError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

// PipelineError codes the admin API passes on, and the status each one means
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  TOOL_INVALID: 400, DESTINATION_INVALID: 400, DLQ_FILTER_INVALID: 400, DLQ_CURSOR_INVALID: 400, EVENT_FILTER_INVALID: 400, EVENT_CURSOR_INVALID: 400, EVENT_SEARCH_TIMEOUT: 422,
  REPLAY_INVALID: 400, REPLAY_CONFIRM_REQUIRED: 409, REPLAY_TOO_LARGE: 422,
  DLQ_NOT_FOUND: 404, DESTINATION_NOT_FOUND: 404, DESTINATION_EXISTS: 409,
  DLQ_UNDECODABLE: 409, DLQ_NOT_RETRYABLE: 409, DLQ_BUSY: 409, DLQ_NOT_DISCARDABLE: 409,
}

/** Where admin handlers report what they could not answer normally. */
export interface AdminLog {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

/**
 * Answers `err` as JSON: an AdminError with its status; a known permanent PipelineError with its code
 * (400/404/409); an infrastructure one (database or Redis down) with 503 and `Retry-After`; anything else
 * 500 `INTERNAL_ERROR` without details (the details go to the log).
 *
 * @example
 * try { … } catch (err) { sendAdminError(res, err, log) }
 */
export function sendAdminError(res: ServerResponse, err: unknown, log?: AdminLog): void {
  if (err instanceof AdminError) {
    sendJson(res, err.status, { error: { code: err.code, message: err.message } })
  } else if (isPipelineError(err) && err.kind === 'infrastructure') {
    sendJson(res, 503, { error: { code: err.code, message: err.message } }, { 'retry-after': '5' })
  } else if (isPipelineError(err) && STATUS_OF_CODE[err.code] !== undefined) {
    sendJson(res, STATUS_OF_CODE[err.code] as number, { error: { code: err.code, message: err.message } })
  } else {
    log?.warn({ err }, 'admin API request failed unexpectedly')
    sendJson(res, 500, { error: { code: 'INTERNAL_ERROR', message: 'the request failed unexpectedly; see the server log' } })
  }
}

/**
 * Reads a JSON object body of at most `maxBytes`. An empty body reads as `{}`. Throws AdminError
 * `BODY_TOO_LARGE` (413) or `INVALID_JSON` (400, also for what PostgreSQL cannot store: a `\\u0000` or unpaired
 * surrogate escape, or nesting deeper than 512 levels; see `unstorableJson`).
 *
 * @example
 * const body = await readJsonObject(req, 1 << 20)
 */
export async function readJsonObject(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > maxBytes) throw new AdminError(413, 'BODY_TOO_LARGE', `request body is larger than ${maxBytes} bytes`)
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8').trim()
  if (text === '') return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new AdminError(400, 'INVALID_JSON', `request body is not valid JSON: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AdminError(400, 'INVALID_JSON', 'request body must be a JSON object')
  }
  // what PostgreSQL's text and jsonb refuse would fail the query (a 500), and no admin body nests that deep
  const unstorable = unstorableJson(text)
  if (unstorable !== undefined) {
    throw new AdminError(400, 'INVALID_JSON', `request body holds ${unstorable}, which PostgreSQL cannot store; remove it`)
  }
  return value as Record<string, unknown>
}

/** The query parameters of a request as a plain object (the last value of a repeated name wins). */
export function queryOf(req: IncomingMessage): Record<string, string> {
  return Object.fromEntries(new URL(req.url ?? '/', 'http://admin.invalid').searchParams)
}

/** A DLQ row id from the path; AdminError `DLQ_ID_INVALID` (400) when it is not a positive integer. */
export function dlqIdOf(raw: string | undefined): number {
  if (!raw || !/^[1-9]\d{0,14}$/.test(raw)) {
    throw new AdminError(400, 'DLQ_ID_INVALID', `DLQ entry id must be a positive integer; got ${JSON.stringify(raw?.slice(0, 40))}`)
  }
  return Number(raw)
}

/**
 * Wraps a route handler so that whatever it throws is answered by `sendAdminError`.
 *
 * @example
 * const show = guarded(async (_req, res, { id }) => { … }, logger)
 */
export function guarded(fn: RouteHandler, log?: AdminLog): RouteHandler {
  return async (req, res, params) => {
    try {
      await fn(req, res, params)
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }
}
