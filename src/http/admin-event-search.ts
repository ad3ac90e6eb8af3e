import { parseEventSearch } from '../db/event-search-filter.js'
import { searchEvents } from '../db/event-search.js'
import type { AdminOptions } from './admin.js'
import { guarded, queryOf } from './admin-http.js'
import { sendJson, type Route } from './server.js'

/**
 * `GET /admin/events`: a search over stored events and open dead letters, newest first, with filters (tool,
 * tenant, event_type exact or `*` glob, repository, status, delivery_id, from, to) and cursor pages of `limit`
 * (1–500, default 50). Answers `{ events, next_cursor }`; a bad parameter is 400 `EVENT_FILTER_INVALID`, a
 * cursor it did not issue 400 `EVENT_CURSOR_INVALID`.
 *
 * @example
 * createRouter(eventSearchRoutes(options)) // GET /admin/events?tool=gh-main&status=dead_lettered
 */
export function eventSearchRoutes(options: AdminOptions): Route[] {
  const forwarding = (options.staticTools ?? []).filter((t) => t.processingMode === 'store_and_forward').map((t) => t.id)
  const search = guarded(async (req, res) => {
    sendJson(res, 200, await searchEvents(options.db, parseEventSearch(queryOf(req)), forwarding))
  }, options.logger)
  return [{ method: 'GET', path: '/admin/events', handler: search }]
}
