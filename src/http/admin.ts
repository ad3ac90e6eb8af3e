import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Kysely } from 'kysely'
import type { ToolConfig } from '../core/tool.js'
import type { Database } from '../db/database.js'
import type { DlqStatusListener } from '../db/dlq-store.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import type { ToolStore } from '../db/tool-store.js'
import type { StreamKeys } from '../sources/keys.js'
import type { RedisClient, StreamClient } from '../sources/stream-client.js'
import { breakerRoutes } from './admin-breakers.js'
import { clientKey } from './connection-guard.js'
import { commandRoutes, type AdminCommandLog } from './admin-commands.js'
import { destinationRoutes } from './admin-destinations.js'
import { dlqRoutes } from './admin-dlq.js'
import { replayRoutes, type AdminReplay } from './admin-replay.js'
import { eventContentRoutes } from './admin-event-content.js'
import { eventSearchRoutes } from './admin-event-search.js'
import type { AdminLog } from './admin-http.js'
import { openApiRoute } from './admin-openapi.js'
import { overviewRoutes } from './admin-overview.js'
import { toolSecretRoutes } from './admin-tool-secrets.js'
import { toolRoutes } from './admin-tools.js'
import { LoginThrottle, type LoginThrottleOptions } from './login-throttle.js'
import { sendJson, type Route } from './server.js'

/** What the admin API works on. */
export interface AdminOptions {
  readonly db: Kysely<Database>
  /** Client for the idempotency marker shown by `GET /admin/events/:id`. */
  readonly redis: Pick<RedisClient, 'call'>
  readonly keys: StreamKeys
  /**
   * Key sets of the stream partitions (STREAM_PARTITIONS > 1; `StreamPartitions.keys`): an event's idempotency
   * marker lives in its partition's key space, so `GET /admin/events/:id` looks in each. @defaultValue [keys]
   */
  readonly partitionKeys?: readonly StreamKeys[]
  /** Refreshed after every tool change, so this process sees it at once. */
  readonly tools: Pick<ToolRegistry, 'refresh'>
  readonly toolStore: Pick<ToolStore, 'list' | 'get' | 'upsert' | 'replace' | 'modify' | 'remove' | 'changeDestinations'>
  /** The config file's tools, listed read-only (`source: "config"`). @defaultValue [] */
  readonly staticTools?: readonly ToolConfig[]
  /** ADMIN_TOKEN. Unset or empty: no route is mounted, so every `/admin` request is an unknown path (404, never 405). */
  readonly token?: string
  /**
   * Failed-login throttle per client address (ADMIN_LOGIN_MAX_FAILURES, ADMIN_LOGIN_WINDOW; an IPv6 client per /64,
   * as `clientKey` groups them): past `maxFailures` wrong bearer tokens in `windowMs`, the address gets 429
   * `ADMIN_LOGIN_THROTTLED` with Retry-After, and its token is not even compared. @defaultValue 5 failures per 60 s, 10,000 addresses remembered
   */
  readonly loginThrottle?: LoginThrottleOptions
  /** The main stream; re-queued DLQ events go back to it. */
  readonly stream: StreamClient
  /** Approximate cap on the main stream for re-queued events (`MAXLEN ~`, STREAM_MAXLEN). @defaultValue unset */
  readonly streamMaxLen?: number
  /** Told about every DLQ status change the API makes (re-queues, discards) once committed, for metrics. */
  readonly onDlqStatusChange?: DlqStatusListener
  /** Who made a change, for the audit log. @defaultValue "admin-api" */
  readonly actor?: string
  /** Largest request body, in bytes. @defaultValue 1048576 */
  readonly maxBodyBytes?: number
  /** Tool and DLQ changes at info, unexpected failures at warn; never a secret or a token. */
  readonly logger?: AdminLog
  /** The command log whose dead letters `/admin/commands/dlq` serves. @defaultValue unset: those routes are not mounted */
  readonly commandLog?: AdminCommandLog
  /** Replays of stored events (`/admin/replays`). @defaultValue unset: those routes are not mounted */
  readonly replay?: AdminReplay
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/**
 * Checks `Authorization: Bearer <token>`: `missing` without a bearer token, else whether it matches; compares
 * digests in constant time.
 */
function checkToken(req: IncomingMessage, expected: Buffer): 'ok' | 'wrong' | 'missing' {
  const header = req.headers.authorization
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  if (m === null) return 'missing'
  // hashing first makes the comparison independent of the given token's length
  return timingSafeEqual(digest(m[1] as string), expected) ? 'ok' : 'wrong'
}

/**
 * The admin API's routes for `createRouter`, all under `/admin`: tools (list, show, create or replace with
 * PUT, delete), the DLQ (list with filters and cursor pages, show with history, retry one, retry by filter,
 * discard) and the fate of one event. Every request needs `Authorization: Bearer <ADMIN_TOKEN>` (401
 * `ADMIN_UNAUTHORIZED` otherwise; 429 `ADMIN_LOGIN_THROTTLED` for an address past its failed-login budget);
 * without a token configured no route is returned, so every `/admin` request is an unknown path (404) and the
 * API is off, never open. Answers are JSON; errors are `{ error: { code, message } }`; tool secrets are always masked.
 *
 * @example
 * // on its own listener (ADMIN_ADDR), never next to the webhooks
 * const routes = adminRoutes({ db, redis, keys, tools: registry, toolStore, token: config.adminToken, stream })
 * const admin = await startHttpServer('127.0.0.1:8081', createRouter(routes), { maxConnections: 64 })
 */
export function adminRoutes(options: AdminOptions): Route[] {
  const maxBodyBytes = options.maxBodyBytes ?? 1 << 20
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new RangeError(`adminRoutes: "maxBodyBytes" must be a positive integer; got ${options.maxBodyBytes}`)
  const routes = [...toolRoutes(options, maxBodyBytes), ...toolSecretRoutes(options, maxBodyBytes), ...destinationRoutes(options, maxBodyBytes), ...dlqRoutes(options, maxBodyBytes), ...eventSearchRoutes(options),
    ...eventContentRoutes(options), ...overviewRoutes(options), ...breakerRoutes(options),
    ...(options.commandLog ? commandRoutes(options.commandLog, options.logger, options.actor) : []),
    ...(options.replay ? replayRoutes(options, options.replay, maxBodyBytes) : []), openApiRoute()]
  const token = options.token
  // off: no route at all, so a wrong method gets the router's 404 too, never a 405 whose Allow lists the API
  if (!token) return []
  const expected = digest(token)
  const throttle = new LoginThrottle(options.loginThrottle)
  return routes.map((route) => ({
    ...route,
    handler: (req, res, params) => {
      // answers carry generated secrets, payloads and headers: no cache (browser, proxy) may keep one, nor sniff it as HTML
      res.setHeader('cache-control', 'no-store')
      res.setHeader('x-content-type-options', 'nosniff')
      // per client as the connection cap counts them: an IPv6 host holds a whole /64 and could rotate through it
      const address = clientKey(req.socket.remoteAddress)
      const waitMs = throttle.retryAfterMs(address)
      if (waitMs > 0) {
        req.resume()
        const seconds = Math.ceil(waitMs / 1000)
        sendJson(res, 429, { error: { code: 'ADMIN_LOGIN_THROTTLED', message: `too many wrong admin tokens from this address; ` +
          `retry after ${seconds} s with the configured ADMIN_TOKEN (limit ADMIN_LOGIN_MAX_FAILURES per ADMIN_LOGIN_WINDOW)` } },
        { 'retry-after': String(seconds) })
        return
      }
      const verdict = checkToken(req, expected)
      // only a wrong bearer token is a guess; a request without one cannot find the token, so it is not counted
      if (verdict === 'wrong') throttle.failed(address)
      if (verdict !== 'ok') {
        req.resume()
        sendJson(res, 401, { error: { code: 'ADMIN_UNAUTHORIZED', message: 'the admin API needs the header "Authorization: Bearer <ADMIN_TOKEN>" with the configured token' } },
          { 'www-authenticate': 'Bearer realm="hookstream-admin"' })
        return
      }
      throttle.succeeded(address)
      // no tool, event, destination or DLQ id holds a NUL, and PostgreSQL refuses one in a query (a 500 otherwise)
      const nul = Object.keys(params).find((name) => (params[name] as string).includes('\u0000'))
      if (nul !== undefined) {
        req.resume()
        sendJson(res, 400, { error: { code: 'INVALID_PATH', message: `path parameter "${nul}" holds a NUL character (%00), which no id can contain; remove it` } })
        return
      }
      return route.handler(req, res, params)
    },
  }))
}
