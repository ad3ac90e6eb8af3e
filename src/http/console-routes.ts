import { readdirSync, readFileSync } from 'node:fs'
import { extname } from 'node:path'
import type { Route, RouteHandler } from './server.js'

/** Where the console's files are: next to this module, in src/http/console (the build copies them into dist). */
const CONSOLE_DIR = new URL('./console/', import.meta.url)

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml',
}

/**
 * Headers of every console answer: a strict Content-Security-Policy (own files only, no inline script or style,
 * no frames, no form posts elsewhere), no sniffing, no referrer, and no caching of a stale console.
 */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
})

function fileRoute(path: string, body: Buffer, type: string): Route[] {
  const handler: RouteHandler = (req, res) => {
    res.writeHead(200, { ...CONSOLE_HEADERS, 'content-type': type, 'content-length': body.length })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
  return [{ method: 'GET', path, handler }, { method: 'HEAD', path, handler }]
}

/**
 * The web console's routes for the admin listener: `/console` and `/console/` answer its page, and each of its
 * files (HTML, CSS, ES modules) is one fixed route under `/console/`, read once when the routes are built, so
 * no request path ever reaches the file system. The console itself needs no token to load: it asks for the
 * admin token and sends it as `Authorization: Bearer` to the admin API; mount these routes only where the
 * admin API runs.
 *
 * @example
 * createRouter([...adminRoutes(options), ...consoleRoutes()]) // http://127.0.0.1:8081/console
 */
export function consoleRoutes(): Route[] {
  const routes: Route[] = []
  for (const name of readdirSync(CONSOLE_DIR, { recursive: true, encoding: 'utf8' }).sort()) {
    const type = CONTENT_TYPES[extname(name)]
    if (type === undefined) continue
    const body = readFileSync(new URL(name, CONSOLE_DIR))
    const path = `/console/${name.split('\\').join('/')}`
    routes.push(...fileRoute(path, body, type))
    if (name === 'index.html') routes.push(...fileRoute('/console', body, type), ...fileRoute('/console/', body, type))
  }
  return routes
}
