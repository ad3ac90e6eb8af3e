import { parseDlqFilter } from '../db/dlq-filter.js'
import { DlqStore } from '../db/dlq-store.js'
import { eventHistory, toolsWithEvent } from '../db/event-history.js'
import { DONE_MARKER } from '../sources/keys.js'
import { idempotencyKey } from '../sources/keys.js'
import type { AdminOptions } from './admin.js'
import { AdminError, dlqIdOf, queryOf, readJsonObject, sendAdminError } from './admin-http.js'
import type { Route, RouteHandler } from './server.js'
import { sendJson } from './server.js'

const FILTER_FIELDS = ['status', 'tool', 'tool_id', 'event_type', 'from', 'to']
// the most re-queued rows a bulk retry lists in its answer (`requeued` counts them all)
const LISTED_REQUEUED = 1000

// a name that is no filter (a misspelt one) would narrow nothing: refused, naming it and what is expected
function refuseUnknown(given: Readonly<Record<string, unknown>>, what: string, others: readonly string[]): void {
  const known = [...others, ...FILTER_FIELDS]
  const unknown = Object.keys(given).filter((k) => !known.includes(k))
  if (unknown.length > 0) {
    throw new AdminError(400, 'DLQ_FILTER_INVALID', `unknown ${what}(s) ${unknown.map((k) => `"${k.slice(0, 40)}"`).join(', ')}; expected ${known.join(', ')}`)
  }
}

/**
 * The `/admin/dlq` routes (list, show, retry one, retry by filter, discard) and the fate of one event:
 * `GET /admin/tools/:tool/events/:deliveryId`, and `GET /admin/events/:id` (every tool's event with that id).
 *
 * @example
 * createRouter(dlqRoutes(options, 1 << 20))
 */
export function dlqRoutes(options: AdminOptions, maxBodyBytes: number): Route[] {
  const { db, logger: log } = options
  const actor = options.actor ?? 'admin-api'
  const dlq = new DlqStore({ db, stream: options.stream, ...(options.streamMaxLen !== undefined ? { maxLen: options.streamMaxLen } : {}),
    ...(options.onDlqStatusChange ? { onStatusChange: options.onDlqStatusChange } : {}) })

  const handle = (fn: RouteHandler): RouteHandler => async (req, res, params) => {
    try {
      await fn(req, res, params)
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }

  const list = handle(async (req, res) => {
    const query = queryOf(req)
    // a misspelt filter would otherwise narrow nothing and list every row
    refuseUnknown(query, 'DLQ list parameter', ['limit', 'cursor'])
    const limit = query.limit === undefined ? 50 : Number(query.limit)
    const page = await dlq.list(parseDlqFilter(query), { limit, ...(query.cursor ? { cursor: query.cursor } : {}) })
    sendJson(res, 200, { entries: page.entries, next_cursor: page.nextCursor })
  })

  const show = handle(async (_req, res, { id }) => {
    const entry = await dlq.get(dlqIdOf(id))
    if (!entry) throw new AdminError(404, 'DLQ_NOT_FOUND', `DLQ entry ${id} does not exist; list entries with GET /admin/dlq`)
    sendJson(res, 200, { entry })
  })

  const retryOne = handle(async (_req, res, { id }) => {
    const requeued = await dlq.retryOne(dlqIdOf(id), actor)
    log?.info({ dlq_id: requeued.id, event_id: requeued.event_id, actor }, 'DLQ entry re-queued through the admin API')
    sendJson(res, 200, { requeued })
  })

  const retryMatching = handle(async (req, res) => {
    const body = await readJsonObject(req, maxBodyBytes)
    refuseUnknown(body, 'DLQ filter field', ['all'])
    // judged on the parsed filter: empty values ("tool": "") narrow nothing, so they are no filter either
    const filter = parseDlqFilter(body)
    if (body.all !== true && Object.keys(filter).length === 0) {
      throw new AdminError(400, 'DLQ_FILTER_REQUIRED', 'give a filter (status, tool, event_type, from, to) or "all": true to re-queue every pending and failed entry')
    }
    // the count is of every row; the list is cut at LISTED_REQUEUED, so a retry of a million rows answers a page
    const { count, entries } = await dlq.retryMatching(filter, actor, undefined, LISTED_REQUEUED)
    log?.info({ count, actor }, 'DLQ entries re-queued through the admin API')
    sendJson(res, 200, { requeued: count, entries, entries_truncated: count > entries.length })
  })

  const discard = handle(async (_req, res, { id }) => {
    const entry = await dlq.discard(dlqIdOf(id), actor)
    log?.info({ dlq_id: entry.id, event_id: entry.event_id, actor }, 'DLQ entry discarded through the admin API')
    sendJson(res, 200, { entry })
  })

  const fateOf = async (toolId: string, id: string) => {
    const [history, marker] = await Promise.all([
      eventHistory(db, toolId, id),
      // with partitions the marker is under the event's partition's hash tag; one GET per partition finds it
      Promise.all((options.partitionKeys ?? [options.keys]).map((k) => options.redis.call('GET', idempotencyKey(k, toolId, id))))
        .then((markers) => markers.find((m) => m !== null) ?? null, () => undefined) as Promise<unknown>,
    ])
    if (!history) return undefined
    const idempotency = marker === undefined ? 'unknown' : marker === null ? 'none' : marker === DONE_MARKER ? 'done' : 'in_progress'
    return { ...history, idempotency }
  }
  const notFound = (what: string) => new AdminError(404, 'EVENT_NOT_FOUND',
    `no stored row, DLQ entry or audit row has ${what}; it may still be on the stream, or was never accepted`)

  const toolEvent = handle(async (_req, res, { tool = '', deliveryId = '' }) => {
    const fate = await fateOf(tool, deliveryId)
    if (!fate) throw notFound(`event id "${deliveryId.slice(0, 255)}" of tool "${tool.slice(0, 128)}"`)
    sendJson(res, 200, { event: fate })
  })

  // a delivery id alone may belong to several tools: one match answers as before, several list every match
  const event = handle(async (_req, res, { id = '' }) => {
    const tools = await toolsWithEvent(db, id)
    const fates = (await Promise.all(tools.map((toolId) => fateOf(toolId, id)))).filter((f) => f !== undefined)
    if (fates.length === 0) throw notFound(`event id "${id.slice(0, 255)}" in any tool`)
    sendJson(res, 200, fates.length === 1 ? { event: fates[0] } : { events: fates })
  })

  return [
    { method: 'GET', path: '/admin/dlq', handler: list },
    { method: 'POST', path: '/admin/dlq/retry', handler: retryMatching },
    { method: 'GET', path: '/admin/dlq/:id', handler: show },
    { method: 'POST', path: '/admin/dlq/:id/retry', handler: retryOne },
    { method: 'POST', path: '/admin/dlq/:id/discard', handler: discard },
    { method: 'GET', path: '/admin/events/:id', handler: event },
    { method: 'GET', path: '/admin/tools/:tool/events/:deliveryId', handler: toolEvent },
  ]
}
