import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Kysely } from 'kysely'
import type { ToolConfig } from '../core/tool.js'
import type { Database } from '../db/database.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import type { ToolStore } from '../db/tool-store.js'
import type { StreamKeys } from '../sources/keys.js'
import type { RedisClient, StreamClient } from '../sources/stream-client.js'
import { commandRoutes, type AdminCommandLog } from './admin-commands.js'
import { dlqRoutes } from './admin-dlq.js'
import type { AdminLog } from './admin-http.js'
import { openApiRoute } from './admin-openapi.js'
import { toolSecretRoutes } from './admin-tool-secrets.js'
import { toolRoutes } from './admin-tools.js'
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
  readonly toolStore: Pick<ToolStore, 'list' | 'get' | 'upsert' | 'remove'>
  /** The config file's tools, listed read-only (`source: "config"`). @defaultValue [] */
  readonly staticTools?: readonly ToolConfig[]
  /** ADMIN_TOKEN. Unset or empty: every `/admin` route answers 404 (the API is off). */
  readonly token?: string
  /** The main stream; re-queued DLQ events go back to it. */
  readonly stream: StreamClient
  /** Approximate cap on the main stream for re-queued events (`MAXLEN ~`, STREAM_MAXLEN). @defaultValue unset */
  readonly streamMaxLen?: number
  /** Who made a change, for the audit log. @defaultValue "admin-api" */
  readonly actor?: string
  /** Largest request body, in bytes. @defaultValue 1048576 */
  readonly maxBodyBytes?: number
  /** Tool and DLQ changes at info, unexpected failures at warn; never a secret or a token. */
  readonly logger?: AdminLog
  /** The command log whose dead letters `/admin/commands/dlq` serves. @defaultValue unset: those routes are not mounted */
  readonly commandLog?: AdminCommandLog
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** Tells whether the request carries `Authorization: Bearer <token>`; compares digests in constant time. */
function authorized(req: IncomingMessage, expected: Buffer): boolean {
  const header = req.headers.authorization
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  // hashing first makes the comparison independent of the given token's length
  return m !== null && timingSafeEqual(digest(m[1] as string), expected)
}

/**
 * The admin API's routes for `createRouter`, all under `/admin`: tools (list, show, create or replace with
 * PUT, delete), the DLQ (list with filters and cursor pages, show with history, retry one, retry by filter,
 * discard) and the fate of one event. Every request needs `Authorization: Bearer <ADMIN_TOKEN>` (401
 * `ADMIN_UNAUTHORIZED` otherwise); without a token configured every route answers 404, so the API is off,
 * never open. Answers are JSON; errors are `{ error: { code, message } }`; tool secrets are always masked.
 *
 * @example
 * const routes = [...adminRoutes({ db, redis, keys, tools: registry, toolStore, token: config.adminToken, stream }), ...ingestRoutes]
 * const http = await startHttpServer(config.http.addr, createRouter(routes))
 */
export function adminRoutes(options: AdminOptions): Route[] {
  const maxBodyBytes = options.maxBodyBytes ?? 1 << 20
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new RangeError(`adminRoutes: "maxBodyBytes" must be a positive integer; got ${options.maxBodyBytes}`)
  const routes = [...toolRoutes(options, maxBodyBytes), ...toolSecretRoutes(options, maxBodyBytes), ...dlqRoutes(options, maxBodyBytes),
    ...(options.commandLog ? commandRoutes(options.commandLog, options.logger, options.actor) : []), openApiRoute()]
  const token = options.token
  if (!token) {
    return routes.map((route) => ({
      ...route,
      handler: (req, res) => {
        const path = (req.url ?? '/').split('?')[0] as string
        sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route for ${req.method} ${path.slice(0, 200)}` } })
      },
    }))
  }
  const expected = digest(token)
  return routes.map((route) => ({
    ...route,
    handler: (req, res, params) => {
      if (!authorized(req, expected)) {
        req.resume()
        sendJson(res, 401, { error: { code: 'ADMIN_UNAUTHORIZED', message: 'the admin API needs the header "Authorization: Bearer <ADMIN_TOKEN>" with the configured token' } },
          { 'www-authenticate': 'Bearer realm="hookstream-admin"' })
        return
      }
      return route.handler(req, res, params)
    },
  }))
}
