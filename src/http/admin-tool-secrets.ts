import { parseDuration } from '../core/duration.js'
import { generateForwardSecret, retireSecret, rotateSecret, type SecretKind } from '../core/tool-secrets.js'
import { toolToJSON, type ToolConfig } from '../core/tool.js'
import type { AuditAction } from '../db/audit-log.js'
import type { AdminOptions } from './admin.js'
import { AdminError, readJsonObject, sendAdminError } from './admin-http.js'
import type { Route, RouteHandler } from './server.js'
import { sendJson } from './server.js'

const MAX_SECRET_CHARS = 1024

/**
 * `previous_expires_in` of a rotation body as epoch ms (undefined: the previous secret stays until retired);
 * AdminError `TOOL_INVALID` (400) when it is not a positive duration.
 *
 * @example
 * expiresAt('gh-main', '24h') // Date.now() + 86,400,000
 */
export function expiresAt(id: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined
  const ms = typeof value === 'string' ? parseDuration(value) : undefined
  // past year 275760 there is no Date: storing or showing the expiry would throw a 500 after the parse
  if (ms === undefined || ms < 1 || Number.isNaN(new Date(Date.now() + ms).getTime())) {
    throw new AdminError(400, 'TOOL_INVALID', `tool "${id}": field "previous_expires_in" must be a duration such as "24h" or "30m"; ` +
      'leave it out to keep the previous secret until it is retired')
  }
  return Date.now() + ms
}

/**
 * The secret rotation routes of stored tools. Inbound (`/secret`): `rotate` makes `{ secret }` the current
 * secret and keeps the old one accepted (for `previous_expires_in`, or until `retire`). Outbound
 * (`/forward-secret`): `rotate` makes `{ secret }` (or a generated `whsec_…`, returned once as
 * `forward_secret`) the signing secret and keeps signing with the old one too until it expires or is retired.
 * A given secret is never echoed. Each change is audited (`tool_secret_rotated`, `tool_secret_retired`).
 *
 * @example
 * createRouter(toolSecretRoutes(options, 1 << 20))
 */
export function toolSecretRoutes(options: AdminOptions, maxBodyBytes: number): Route[] {
  const { toolStore, tools: registry, logger: log } = options
  const actor = options.actor ?? 'admin-api'
  const staticIds = new Set((options.staticTools ?? []).map((t) => t.id))

  // one locked read-modify-write of the stored tool: a change computed from a read outside the row lock would
  // overwrite whatever another admin stored in between (a destination added, the other secret rotated)
  const save = async (id: string, change: (tool: ToolConfig) => ToolConfig, action: AuditAction): Promise<ToolConfig> => {
    const tool = await toolStore.modify(id, change, actor, action)
    if (!tool) {
      if (staticIds.has(id)) throw new AdminError(409, 'TOOL_READ_ONLY', `tool "${id}" is defined in the config file; rotate its secret in the file`)
      throw new AdminError(404, 'TOOL_NOT_FOUND', `tool "${id.slice(0, 128)}" does not exist; list tools with GET /admin/tools`)
    }
    await registry.refresh().catch((err: unknown) => log?.warn({ err }, 'tool registry refresh after a secret change failed'))
    return tool
  }

  const rotate = (kind: SecretKind): RouteHandler => async (req, res, { id = '' }) => {
    try {
      const body = await readJsonObject(req, maxBodyBytes)
      const unknown = Object.keys(body).filter((k) => k !== 'secret' && k !== 'previous_expires_in')
      if (unknown.length > 0) throw new AdminError(400, 'TOOL_INVALID', `unknown field(s) ${unknown.map((k) => `"${k.slice(0, 40)}"`).join(', ')}; expected secret, previous_expires_in`)
      const given = body.secret
      if (given !== undefined && (typeof given !== 'string' || given === '' || given.length > MAX_SECRET_CHARS)) {
        throw new AdminError(400, 'TOOL_INVALID', `tool "${id}": field "secret" must be a non-empty string of at most ${MAX_SECRET_CHARS} characters`)
      }
      if (kind === 'inbound' && given === undefined) {
        throw new AdminError(400, 'TOOL_INVALID', `tool "${id}": field "secret" is required: the new secret the sender signs with`)
      }
      const until = expiresAt(id, body.previous_expires_in)
      const next = (given as string | undefined) ?? generateForwardSecret()
      const rotated = await save(id, (tool) => rotateSecret(tool, kind, next, until), 'tool_secret_rotated')
      log?.info({ tool_id: id, kind, actor }, 'tool secret rotated through the admin API')
      sendJson(res, 200, { tool: { ...toolToJSON(rotated), source: 'store' }, ...(given === undefined ? { forward_secret: next } : {}) })
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }

  const retire = (kind: SecretKind): RouteHandler => async (_req, res, { id = '' }) => {
    try {
      const retired = await save(id, (tool) => retireSecret(tool, kind), 'tool_secret_retired')
      log?.info({ tool_id: id, kind, actor }, 'previous tool secret retired through the admin API')
      sendJson(res, 200, { tool: { ...toolToJSON(retired), source: 'store' } })
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }

  return [
    { method: 'POST', path: '/admin/tools/:id/secret/rotate', handler: rotate('inbound') },
    { method: 'POST', path: '/admin/tools/:id/secret/retire', handler: retire('inbound') },
    { method: 'POST', path: '/admin/tools/:id/forward-secret/rotate', handler: rotate('forward') },
    { method: 'POST', path: '/admin/tools/:id/forward-secret/retire', handler: retire('forward') },
  ]
}
