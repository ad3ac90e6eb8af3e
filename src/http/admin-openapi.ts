import document from './admin-openapi.json' with { type: 'json' }
import type { Route } from './server.js'

/**
 * The OpenAPI 3.1 description of the admin API (src/http/admin-openapi.json, kept in the repo). A test calls
 * every route of the running API and validates each answer against it, so it cannot drift from the code.
 */
export const ADMIN_OPENAPI: Readonly<Record<string, unknown>> = document

/**
 * `GET /admin/openapi.json`: the document above, behind the same token as every admin route.
 *
 * @example
 * createRouter([...toolRoutes(options, 1 << 20), openApiRoute()])
 */
export function openApiRoute(): Route {
  const text = JSON.stringify(document)
  return {
    method: 'GET', path: '/admin/openapi.json',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    },
  }
}
