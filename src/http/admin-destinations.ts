import { DEFAULT_DESTINATION_ID, destinationToInput, destinationToJSON, parseDestination, type Destination, type DestinationInput } from '../core/destination.js'
import { addDestination, keepDestinationWriteOnly, removeDestination, retireDestinationSecret, rotateDestinationSecret, updateDestination } from '../core/destination-changes.js'
import { PipelineError } from '../core/errors.js'
import { destinationsOf, type ToolConfig } from '../core/tool.js'
import { generateForwardSecret } from '../core/tool-secrets.js'
import type { AuditAction } from '../db/audit-log.js'
import type { AdminOptions } from './admin.js'
import { AdminError, guarded, readJsonObject } from './admin-http.js'
import { expiresAt } from './admin-tool-secrets.js'
import type { Route } from './server.js'
import { sendJson } from './server.js'

/** A destination as the admin API shows it: masked, and where it comes from (`forward_url` for `default`). */
function shown(d: Destination): Record<string, unknown> {
  return { ...destinationToJSON(d), source: d.id === DEFAULT_DESTINATION_ID ? 'forward_url' : 'destinations' }
}

function invalid(message: string): never {
  throw new PipelineError('permanent', 'DESTINATION_INVALID', message)
}

/**
 * The `/admin/tools/:id/destinations` routes: list, add (POST; a signing secret is generated when none is given
 * and returned once as `secret`), show, replace (PUT), change some fields (PATCH, e.g. `{"enabled": false}`)
 * and remove (DELETE) a stored tool's destinations, and rotate (`/secret/rotate`: `{ secret?, previous_expires_in? }`,
 * a generated one returned once as `secret`; the old one keeps signing until it expires) or retire
 * (`/secret/retire`) a destination's signing secret. Each change runs under the tool row's lock, is audited
 * (`destination_added`, `destination_replaced`, `destination_updated`, `destination_removed`) and refreshes the
 * ToolRegistry. Secrets and header values are never echoed; `default` (the tool's `forward_url`) is listed but
 * changed only through the tool itself.
 *
 * @example
 * createRouter(destinationRoutes(options, 1 << 20))
 */
export function destinationRoutes(options: AdminOptions, maxBodyBytes: number): Route[] {
  const { toolStore, tools: registry, logger: log } = options
  const actor = options.actor ?? 'admin-api'
  const staticTools = new Map((options.staticTools ?? []).map((t) => [t.id, t]))
  const notFound = (toolId: string, id: string) => new AdminError(404, 'DESTINATION_NOT_FOUND',
    `tool "${toolId.slice(0, 128)}" has no destination "${id.slice(0, 64)}"; list them with GET /admin/tools/${toolId.slice(0, 128)}/destinations`)

  const toolOf = async (id: string): Promise<ToolConfig> => {
    const tool = (await toolStore.get(id)) ?? staticTools.get(id)
    if (!tool) throw new AdminError(404, 'TOOL_NOT_FOUND', `tool "${id.slice(0, 128)}" does not exist; list tools with GET /admin/tools`)
    return tool
  }

  // one locked read-modify-write of the tool's destinations; `next` returns the new list
  const change = async (toolId: string, destinationId: string, action: AuditAction,
    next: (current: readonly Destination[]) => readonly Destination[]): Promise<ToolConfig> => {
    if (destinationId === DEFAULT_DESTINATION_ID) {
      throw new AdminError(409, 'DESTINATION_READ_ONLY', `destination "default" of tool "${toolId.slice(0, 128)}" is the tool's forward_url; ` +
        `change forward_url, forward_secret and forward_headers with PUT /admin/tools/${toolId.slice(0, 128)}`)
    }
    const changed = await toolStore.changeDestinations(toolId, destinationId, action, actor, next)
    if (changed) {
      await registry.refresh().catch((err: unknown) => log?.warn({ err }, 'tool registry refresh after a destination change failed'))
      return changed
    }
    if (staticTools.has(toolId)) {
      throw new AdminError(409, 'TOOL_READ_ONLY', `tool "${toolId}" is defined in the config file; change its destinations in the file`)
    }
    throw new AdminError(404, 'TOOL_NOT_FOUND', `tool "${toolId.slice(0, 128)}" does not exist; list tools with GET /admin/tools`)
  }

  // a body's destination, its id taken from the path when the body has none
  const bodyOf = async (req: Parameters<Route['handler']>[0], id?: string): Promise<DestinationInput> => {
    // `source` is what GET adds; accepted (and ignored) so a GET → edit → PUT round trip works
    const { source: _source, ...body } = await readJsonObject(req, maxBodyBytes) as DestinationInput & { source?: unknown }
    if (id !== undefined && body.id !== undefined && body.id !== id) {
      invalid(`body field "id" (${JSON.stringify(String(body.id).slice(0, 64))}) differs from the path's destination id "${id.slice(0, 64)}"; leave it out or make them equal`)
    }
    return id === undefined ? body : { ...body, id }
  }

  // a new destination without a signing secret gets one, returned once
  const withSecret = (input: DestinationInput): { input: DestinationInput; generated?: string } => {
    if (input.secret !== undefined && input.secret !== null && input.secret !== '') return { input }
    const generated = generateForwardSecret()
    return { input: { ...input, secret: generated }, generated }
  }

  const list = guarded(async (_req, res, { id = '' }) => {
    sendJson(res, 200, { destinations: destinationsOf(await toolOf(id)).map(shown) })
  }, log)

  const show = guarded(async (_req, res, { id = '', dest = '' }) => {
    const d = destinationsOf(await toolOf(id)).find((x) => x.id === dest)
    if (!d) throw notFound(id, dest)
    sendJson(res, 200, { destination: shown(d) })
  }, log)

  const add = guarded(async (req, res, { id = '' }) => {
    const { input, generated } = withSecret(await bodyOf(req))
    const destination = parseDestination(input, `tool "${id.slice(0, 128)}"`)
    await change(id, destination.id, 'destination_added', (current) => addDestination(current, destination, `tool "${id}"`))
    log?.info({ tool_id: id, destination_id: destination.id, actor }, 'destination added through the admin API')
    sendJson(res, 201, { destination: shown(destination), ...(generated ? { secret: generated } : {}) })
  }, log)

  const replace = guarded(async (req, res, { id = '', dest = '' }) => {
    const body = await bodyOf(req, dest)
    let created = false
    let generated: string | undefined
    const tool = await change(id, dest, 'destination_replaced', (current) => {
      const existing = current.find((d) => d.id === dest)
      created = !existing
      const fresh = existing ? { input: keepDestinationWriteOnly(body, existing) } : withSecret(body)
      generated = fresh.generated
      const destination = parseDestination(fresh.input, `tool "${id}"`)
      return existing ? current.map((d) => (d.id === dest ? destination : d)) : [...current, destination]
    })
    const destination = tool.destinations?.find((d) => d.id === dest) as Destination
    log?.info({ tool_id: id, destination_id: dest, actor, created }, 'destination replaced through the admin API')
    sendJson(res, created ? 201 : 200, { destination: shown(destination), created, ...(generated ? { secret: generated } : {}) })
  }, log)

  const patch = guarded(async (req, res, { id = '', dest = '' }) => {
    const body = await bodyOf(req, dest)
    const tool = await change(id, dest, 'destination_updated', (current) => updateDestination(current, dest,
      (existing) => parseDestination(keepDestinationWriteOnly({ ...destinationToInput(existing), ...body }, existing), `tool "${id}"`), `tool "${id}"`))
    log?.info({ tool_id: id, destination_id: dest, actor, fields: Object.keys(body) }, 'destination updated through the admin API')
    sendJson(res, 200, { destination: shown(tool.destinations?.find((d) => d.id === dest) as Destination) })
  }, log)

  const remove = guarded(async (_req, res, { id = '', dest = '' }) => {
    await change(id, dest, 'destination_removed', (current) => removeDestination(current, dest, `tool "${id}"`))
    log?.info({ tool_id: id, destination_id: dest, actor }, 'destination removed through the admin API')
    res.writeHead(204).end()
  }, log)

  const rotate = guarded(async (req, res, { id = '', dest = '' }) => {
    const body = await readJsonObject(req, maxBodyBytes)
    const unknown = Object.keys(body).filter((k) => k !== 'secret' && k !== 'previous_expires_in')
    if (unknown.length > 0) invalid(`unknown field(s) ${unknown.map((k) => `"${k.slice(0, 40)}"`).join(', ')}; expected secret, previous_expires_in`)
    const given = body.secret
    if (given !== undefined && typeof given !== 'string') invalid(`tool "${id}" destination "${dest.slice(0, 64)}": field "secret" must be a string`)
    const until = expiresAt(id, body.previous_expires_in)
    const next = given ?? generateForwardSecret()
    const tool = await change(id, dest, 'destination_secret_rotated', (current) => updateDestination(current, dest, (d) =>
      // the new secret goes through the one parser, so a bad one is refused as in every other write
      parseDestination(destinationToInput(rotateDestinationSecret(d, next, until)), `tool "${id}"`), `tool "${id}"`))
    log?.info({ tool_id: id, destination_id: dest, actor }, 'destination secret rotated through the admin API')
    sendJson(res, 200, { destination: shown(tool.destinations?.find((d) => d.id === dest) as Destination), ...(given === undefined ? { secret: next } : {}) })
  }, log)

  const retire = guarded(async (_req, res, { id = '', dest = '' }) => {
    const tool = await change(id, dest, 'destination_secret_retired', (current) => updateDestination(current, dest, retireDestinationSecret, `tool "${id}"`))
    log?.info({ tool_id: id, destination_id: dest, actor }, 'previous destination secret retired through the admin API')
    sendJson(res, 200, { destination: shown(tool.destinations?.find((d) => d.id === dest) as Destination) })
  }, log)

  return [
    { method: 'POST', path: '/admin/tools/:id/destinations/:dest/secret/rotate', handler: rotate },
    { method: 'POST', path: '/admin/tools/:id/destinations/:dest/secret/retire', handler: retire },
    { method: 'GET', path: '/admin/tools/:id/destinations', handler: list },
    { method: 'POST', path: '/admin/tools/:id/destinations', handler: add },
    { method: 'GET', path: '/admin/tools/:id/destinations/:dest', handler: show },
    { method: 'PUT', path: '/admin/tools/:id/destinations/:dest', handler: replace },
    { method: 'PATCH', path: '/admin/tools/:id/destinations/:dest', handler: patch },
    { method: 'DELETE', path: '/admin/tools/:id/destinations/:dest', handler: remove },
  ]
}
