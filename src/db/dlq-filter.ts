import { sql, type SelectQueryBuilder } from 'kysely'
import { PipelineError } from '../core/errors.js'
import type { Database, DlqStatus } from './database.js'
import { ISO_TIME } from './event-search-filter.js'

/** Every status a DLQ row can have. */
export const DLQ_STATUSES: readonly DlqStatus[] = Object.freeze(['pending', 'retrying', 'resolved', 'failed', 'discarded'])

/** Which DLQ rows a list or a bulk re-queue applies to; every field narrows. */
export interface DlqFilter {
  readonly status?: readonly DlqStatus[]
  readonly toolId?: string
  readonly eventType?: string
  /** Rows that failed at or after this time. */
  readonly from?: Date
  /** Rows that failed before this time. */
  readonly to?: Date
}

// a given value for an error message: short whatever its size (a body may hold a 1 MiB array)
function shown(v: unknown): string {
  if (typeof v === 'string') return `${JSON.stringify(v.slice(0, 40))}${v.length > 40 ? '…' : ''}`
  if (Array.isArray(v)) return `an array of ${v.length}`
  return typeof v === 'object' && v !== null ? 'an object' : String(v)
}

function bad(message: string, code = 'DLQ_FILTER_INVALID'): PipelineError {
  return new PipelineError('permanent', code, message)
}

/**
 * Reads a DLQ filter from query parameters, a JSON body or CLI flags (`status` as a comma list or array,
 * `tool`, `event_type`, `from`, `to` as ISO 8601). Throws a permanent PipelineError `DLQ_FILTER_INVALID`.
 *
 * @example
 * parseDlqFilter({ status: 'pending,failed', tool: 'gh-main' }) // { status: ['pending', 'failed'], toolId: 'gh-main' }
 */
export function parseDlqFilter(input: Readonly<Record<string, unknown>>): DlqFilter {
  const out: { -readonly [K in keyof DlqFilter]: DlqFilter[K] } = {}
  const str = (name: string): string | undefined => {
    const v = input[name]
    if (v === undefined || v === null || v === '') return undefined
    if (typeof v !== 'string') throw bad(`DLQ filter "${name}" must be a string; got ${shown(v)}`)
    // no stored row has one, and PostgreSQL refuses it in a query (a 500 instead of this answer)
    if (v.includes('\u0000')) throw bad(`DLQ filter "${name}" must not hold a NUL character (\\u0000, %00); got ${JSON.stringify(v.slice(0, 40))}`)
    return v
  }
  const rawStatus = input.status
  if (rawStatus !== undefined && rawStatus !== null && rawStatus !== '') {
    const list = Array.isArray(rawStatus) ? rawStatus : typeof rawStatus === 'string' ? rawStatus.split(',') : [rawStatus]
    out.status = list.map((s) => {
      const v = typeof s === 'string' ? s.trim() : s
      if (!(DLQ_STATUSES as readonly unknown[]).includes(v)) {
        throw bad(`DLQ filter "status" must be one or more of ${DLQ_STATUSES.join(', ')}; got ${shown(s)}`)
      }
      return v as DlqStatus
    })
  }
  const tool = str('tool') ?? str('tool_id')
  if (tool !== undefined) out.toolId = tool
  const eventType = str('event_type')
  if (eventType !== undefined) out.eventType = eventType
  for (const name of ['from', 'to'] as const) {
    const v = str(name)
    if (v === undefined) continue
    const at = new Date(v)
    // JavaScript takes years PostgreSQL's timestamptz does not (before 4713 BC): bound them as the event search does;
    // and it reads "10/11/2024" (October 11th, or November 10th?) or "0" (the year 2000) as some day: only ISO 8601
    const year = at.getUTCFullYear()
    if (!ISO_TIME.test(v) || Number.isNaN(at.getTime()) || year < 1 || year > 9999) {
      throw bad(`DLQ filter "${name}" must be an ISO 8601 time from year 0001 to 9999, such as 2024-06-01T00:00:00Z; got ${JSON.stringify(v.slice(0, 40))}`)
    }
    out[name] = at
  }
  return out
}

/** The opaque cursor of the page after the row `id`. */
export function encodeDlqCursor(id: number): string {
  return Buffer.from(`dlq:${id}`).toString('base64url')
}

/** The row id an opaque cursor stands for; throws `DLQ_CURSOR_INVALID` for one this module did not make. */
export function decodeDlqCursor(cursor: string): number {
  const m = /^dlq:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString())
  if (!m) throw bad('DLQ cursor is not one this server issued; pass "next_cursor" from the previous page unchanged', 'DLQ_CURSOR_INVALID')
  return Number(m[1])
}

/** A query over `webhook_dlq` that filters can narrow. */
export type DlqQuery = SelectQueryBuilder<Database, 'webhook_dlq', object>

/** Narrows `q` to the rows `filter` matches. */
export function applyDlqFilter<Q extends DlqQuery>(q: Q, filter: DlqFilter): Q {
  let out: DlqQuery = q
  if (filter.status?.length) out = out.where('status', 'in', filter.status)
  if (filter.toolId !== undefined) out = out.where('tool_id', '=', filter.toolId)
  if (filter.eventType !== undefined) out = out.where(sql<string>`event->>'event_type'`, '=', filter.eventType)
  if (filter.from) out = out.where('failed_at', '>=', filter.from)
  if (filter.to) out = out.where('failed_at', '<', filter.to)
  return out as Q
}
