import { withoutCredentialHeaders } from '../core/scrub-headers.js'
import { eventContent } from '../db/event-content.js'
import type { AdminOptions } from './admin.js'
import { AdminError, guarded } from './admin-http.js'
import { sendJson, type Route } from './server.js'

/**
 * `GET /admin/tools/:tool/events/:deliveryId/content`: the event's payload, transform output and kept inbound
 * headers (`{ payload, transformed, headers }`), for the console's event page. Headers that carry credentials
 * (DEFAULT_SCRUB_HEADERS: authorization, cookies, `*-token`, `*-signature`, …) are left out again on the way
 * out, whatever the ingest list was. 404 `EVENT_NOT_FOUND` when no stored row or DLQ row has the event.
 *
 * @example
 * createRouter(eventContentRoutes(options)) // GET /admin/tools/gh-main/events/3f0c…/content
 */
export function eventContentRoutes(options: AdminOptions): Route[] {
  const content = guarded(async (_req, res, { tool = '', deliveryId = '' }) => {
    const found = await eventContent(options.db, tool, deliveryId)
    if (!found) {
      throw new AdminError(404, 'EVENT_NOT_FOUND', `no stored row or DLQ entry has event id "${deliveryId.slice(0, 255)}" of tool ` +
        `"${tool.slice(0, 128)}"; it may still be on the stream, or was never accepted`)
    }
    const headers = found.headers && withoutCredentialHeaders(found.headers)
    sendJson(res, 200, { payload: found.payload, transformed: found.transformed, headers })
  }, options.logger)
  return [{ method: 'GET', path: '/admin/tools/:tool/events/:deliveryId/content', handler: content }]
}
