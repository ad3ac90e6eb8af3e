import { PipelineError } from '../core/errors.js'
import { parseReplayRequest, readReplay, startReplay, type ReplayLimits, type ReplaySend } from '../pipelines/replay.js'
import type { AdminOptions } from './admin.js'
import { AdminError, guarded, readJsonObject } from './admin-http.js'
import { sendJson, type Route } from './server.js'

/** What the replay routes need besides the admin API's own options. */
export interface AdminReplay {
  /** Hands the replayed events to delivery (see `ReplaySend`). */
  readonly send: ReplaySend
  /** @defaultValue DEFAULT_REPLAY_LIMITS (REPLAY_MAX_EVENTS 100000, REPLAY_CONFIRM_OVER 100) */
  readonly limits?: ReplayLimits
  /** Replays this process runs at once; another one is refused with 429 `REPLAY_BUSY`. @defaultValue 2 */
  readonly maxRunning?: number
}

// a JSON body's values as the string parameters the replay parser reads (true, 12 and "12" are the same)
function parameters(body: Readonly<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(body)) {
    if (value === null || value === undefined) continue
    if (typeof value !== 'string' && typeof value !== 'boolean' && typeof value !== 'number') {
      throw new PipelineError('permanent', 'REPLAY_INVALID', `replay parameter "${name.slice(0, 40)}" must be a string, number or boolean; got ${Array.isArray(value) ? 'an array' : typeof value}`)
    }
    out[name] = String(value)
  }
  return out
}

/**
 * `POST /admin/replays` sends stored events matching a filter (the event search's, without a page) to their
 * destinations again, or to one (`destination`): `dry_run: true` answers the count (200), a replay of more
 * than REPLAY_CONFIRM_OVER events needs `confirm: true` (409 `REPLAY_CONFIRM_REQUIRED` otherwise), more than
 * REPLAY_MAX_EVENTS is 422 `REPLAY_TOO_LARGE`; a started replay answers 202 with its record and runs on in the
 * background, audited. `GET /admin/replays/:id` shows its progress (404 `REPLAY_NOT_FOUND`).
 *
 * @example
 * createRouter(replayRoutes(options, replay, 1 << 20)) // POST /admin/replays {"tool":"gh-main","from":"2026-11-27T00:00:00Z"}
 */
export function replayRoutes(options: AdminOptions, replay: AdminReplay, maxBodyBytes: number): Route[] {
  const forwarding = (options.staticTools ?? []).filter((t) => t.processingMode === 'store_and_forward').map((t) => t.id)
  const maxRunning = replay.maxRunning ?? 2
  if (!Number.isInteger(maxRunning) || maxRunning < 1) throw new RangeError(`replayRoutes: "maxRunning" must be an integer of at least 1; got ${maxRunning}`)
  let running = 0
  const start = guarded(async (req, res) => {
    const given = parameters(await readJsonObject(req, maxBodyBytes))
    const request = parseReplayRequest(given)
    if (!request.dryRun && running >= maxRunning) {
      throw new AdminError(429, 'REPLAY_BUSY', `${running} replays are running in this process, the most it runs at once; wait for one to finish (GET /admin/replays/:id)`)
    }
    // take the place before counting: requests that arrive while this one counts must see it taken
    if (!request.dryRun) running += 1
    let started
    try {
      started = await startReplay({
        db: options.db, redis: options.redis, send: replay.send, request, given, actor: options.actor ?? 'admin-api',
        ...(replay.limits ? { limits: replay.limits } : {}), staticForwardingTools: forwarding,
      })
    } catch (err) {
      if (!request.dryRun) running -= 1
      throw err
    }
    if (started.dryRun) {
      sendJson(res, 200, { dry_run: true, matched: started.matched, capped: started.capped, needs_confirm: started.needsConfirm })
      return
    }
    void started.finished.then((record) => {
      running -= 1
      options.logger?.info({ replay_id: record.id, status: record.status, sent: record.sent, skipped: record.skipped }, `replay ${record.id} ${record.status}`)
    })
    options.logger?.info({ replay_id: started.record.id, matched: started.record.matched, filter: given }, `replay ${started.record.id} started`)
    sendJson(res, 202, { replay: started.record })
  }, options.logger)
  const show = guarded(async (_req, res, params) => {
    const record = await readReplay(options.redis, params.id ?? '')
    if (!record) throw new AdminError(404, 'REPLAY_NOT_FOUND', `no replay ${JSON.stringify((params.id ?? '').slice(0, 60))}; replay records are kept 7 days`)
    sendJson(res, 200, { replay: record })
  }, options.logger)
  return [{ method: 'POST', path: '/admin/replays', handler: start }, { method: 'GET', path: '/admin/replays/:id', handler: show }]
}
