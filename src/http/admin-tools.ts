import { parseTool, toolToJSON, type ToolConfig } from '../core/tool.js'
import { keepWriteOnly, withSigningSecrets } from '../core/tool-write-only.js'
import type { AdminOptions } from './admin.js'
import { AdminError, readJsonObject, sendAdminError } from './admin-http.js'
import type { Route, RouteHandler } from './server.js'
import { sendJson } from './server.js'

const MASK = '********'
// `source` is what GET adds; accepted (and ignored) so a GET → edit → PUT round trip works
const TOOL_FIELDS = new Set(['source', 'id', 'provider', 'secret', 'tenant_id', 'processing_mode', 'forward_url', 'transform', 'transform_timeout', 'max_body', 'retry_policy', 'enabled', 'signature',
  'delivery_id', 'previous_secret', 'previous_secret_expires_at', 'forward_secret', 'previous_forward_secret', 'previous_forward_secret_expires_at', 'forward_headers', 'destinations'])

/** A tool as the admin API shows it: masked, with where it is defined. */
function shown(tool: ToolConfig, source: 'store' | 'config'): Record<string, unknown> {
  return { ...toolToJSON(tool), source }
}

/**
 * The `/admin/tools` routes (list, show, create or replace, delete) over the ToolStore, with the config
 * file's tools listed read-only. Every change refreshes the ToolRegistry so this process sees it at once.
 *
 * @example
 * createRouter(toolRoutes(options, 1 << 20))
 */
export function toolRoutes(options: AdminOptions, maxBodyBytes: number): Route[] {
  const { toolStore, tools: registry, logger: log } = options
  const actor = options.actor ?? 'admin-api'
  const staticTools = new Map((options.staticTools ?? []).map((t) => [t.id, t]))

  const refresh = async () => {
    // the change is durable already; a failed refresh only delays it here until the next timer refresh
    await registry.refresh().catch((err: unknown) => log?.warn({ err }, 'tool registry refresh after an admin change failed'))
  }

  const list: RouteHandler = async (_req, res) => {
    try {
      // a row that no longer parses (validation tightened by an upgrade, a secret under another key) must not
      // hide every other tool: it is left out and logged, as the registry does (/health names it too)
      const stored = await toolStore.list((id, err) => log?.warn({ tool_id: id, err }, 'stored tool cannot be read; GET /admin/tools leaves it out'))
      const ids = new Set(stored.map((t) => t.id))
      const all = [...stored.map((t) => shown(t, 'store')), ...[...staticTools.values()].filter((t) => !ids.has(t.id)).map((t) => shown(t, 'config'))]
      all.sort((a, b) => String(a.id).localeCompare(String(b.id)))
      sendJson(res, 200, { tools: all })
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }

  const show: RouteHandler = async (_req, res, { id = '' }) => {
    try {
      const stored = await toolStore.get(id)
      const fromConfig = staticTools.get(id)
      if (!stored && !fromConfig) throw new AdminError(404, 'TOOL_NOT_FOUND', `tool "${id.slice(0, 128)}" does not exist; list tools with GET /admin/tools`)
      sendJson(res, 200, { tool: stored ? shown(stored, 'store') : shown(fromConfig as ToolConfig, 'config') })
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }

  const put: RouteHandler = async (req, res, { id = '' }) => {
    try {
      const body = await readJsonObject(req, maxBodyBytes)
      if (body.id !== undefined && body.id !== id) {
        throw new AdminError(400, 'TOOL_ID_MISMATCH', `body field "id" (${JSON.stringify(body.id)}) differs from the path's tool id "${id.slice(0, 128)}"; leave it out or make them equal`)
      }
      const unknown = Object.keys(body).filter((k) => !TOOL_FIELDS.has(k))
      if (unknown.length > 0) {
        throw new AdminError(400, 'TOOL_INVALID', `tool "${id.slice(0, 128)}": unknown field(s) ${unknown.map((k) => `"${k.slice(0, 40)}"`).join(', ')}; expected ${[...TOOL_FIELDS].join(', ')}`)
      }
      const { source: _source, ...input } = body
      // built from the stored tool under its row lock, so what the PUT keeps of it is not undone by a change in between
      const { tool, generated, destinationSecrets, created } = await toolStore.replace(id, (existing) => {
        // secrets are write-only: a PUT without one (or with the mask a GET shows) keeps the stored secret
        if (input.secret === MASK && !existing) {
          throw new AdminError(400, 'TOOL_INVALID', `tool "${id}": field "secret" holds the mask "${MASK}"; send the real signing secret for a new tool`)
        }
        // a forward destination without its own signing secret gets one, shown in this response only
        return withSigningSecrets(parseTool({ ...keepWriteOnly(input, existing), id }, 'admin API tool'), existing)
      }, actor)
      await refresh()
      log?.info({ tool_id: id, created, actor }, created ? 'tool created through the admin API' : 'tool replaced through the admin API')
      sendJson(res, created ? 201 : 200, { tool: shown(tool, 'store'), created, forward_secret: generated, destination_secrets: destinationSecrets })
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }

  const remove: RouteHandler = async (_req, res, { id = '' }) => {
    try {
      if (await toolStore.remove(id, actor)) {
        await refresh()
        log?.info({ tool_id: id, actor }, 'tool deleted through the admin API')
        res.writeHead(204).end()
        return
      }
      if (staticTools.has(id)) {
        throw new AdminError(409, 'TOOL_READ_ONLY', `tool "${id}" is defined in the config file, not stored; remove it from the file's tools list`)
      }
      throw new AdminError(404, 'TOOL_NOT_FOUND', `tool "${id.slice(0, 128)}" does not exist; list tools with GET /admin/tools`)
    } catch (err) {
      sendAdminError(res, err, log)
    }
  }

  return [
    { method: 'GET', path: '/admin/tools', handler: list },
    { method: 'GET', path: '/admin/tools/:id', handler: show },
    { method: 'PUT', path: '/admin/tools/:id', handler: put },
    { method: 'DELETE', path: '/admin/tools/:id', handler: remove },
  ]
}
