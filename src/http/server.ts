import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseListenAddress, type ListenAddress } from '../config/listen-address.js'
import { guardConnections, type ConnectionCloseReason, type ConnectionGuard } from './connection-guard.js'
import { positiveInteger } from '../core/positive-integer.js'

export { parseListenAddress, type ListenAddress }

/** Handles one matched route; `params` holds the decoded `:name` segments of the path pattern. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: Readonly<Record<string, string>>) => void | Promise<void>

/** One route: an HTTP method and a path pattern with `:name` segments, e.g. `/webhooks/:toolId`. */
export interface Route {
  readonly method: string
  readonly path: string
  readonly handler: RouteHandler
}

/**
 * Sends `body` as JSON with `status` and extra `headers` (lowercase names). Does nothing when the response
 * was already sent.
 *
 * @example
 * sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'no route for GET /x' } })
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent) return
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function matcher(pattern: string): (path: string) => Record<string, string> | undefined {
  const parts = pattern.split('/')
  return (path) => {
    const segments = path.split('/')
    if (segments.length !== parts.length) return undefined
    const params: Record<string, string> = {}
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as string
      const segment = segments[i] as string
      if (part.startsWith(':')) {
        if (segment === '') return undefined
        try {
          params[part.slice(1)] = decodeURIComponent(segment)
        } catch {
          return undefined
        }
      } else if (part !== segment) return undefined
    }
    return params
  }
}

/**
 * A small router: the first route whose method and path match handles the request. Unknown paths get
 * 404 `NOT_FOUND`, a known path with another method 405 `METHOD_NOT_ALLOWED` (with `Allow`), and a handler
 * that throws 500 `INTERNAL_ERROR` (without details). Bodies are `{ error: { code, message } }`.
 *
 * @example
 * createRouter([{ method: 'POST', path: '/webhooks/:toolId', handler: ingest }])
 */
export function createRouter(routes: readonly Route[]): RequestListener {
  const compiled = routes.map((route) => {
    if (!route.path.startsWith('/')) throw new RangeError(`createRouter: route path must start with "/"; got ${JSON.stringify(route.path)}`)
    return { ...route, method: route.method.toUpperCase(), match: matcher(route.path) }
  })
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string
    const allowed: string[] = []
    for (const route of compiled) {
      const params = route.match(path)
      if (!params) continue
      if (route.method !== req.method) {
        allowed.push(route.method)
        continue
      }
      Promise.resolve()
        .then(() => route.handler(req, res, params))
        .catch(() => sendJson(res, 500, { error: { code: 'INTERNAL_ERROR', message: 'the request failed unexpectedly' } }))
      return
    }
    if (allowed.length > 0) {
      sendJson(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: `${req.method} is not allowed on ${path}; use ${allowed.join(' or ')}` } },
        { allow: allowed.join(', ') })
    } else {
      sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route for ${req.method} ${path.slice(0, 200)}` } })
    }
  }
}

export interface HttpServerOptions {
  /** Time to receive the request headers, in ms. @defaultValue 10000 */
  readonly headersTimeoutMs?: number
  /** Time to receive the whole request, in ms. @defaultValue 30000 */
  readonly requestTimeoutMs?: number
  /** Idle time of a keep-alive connection, in ms. @defaultValue 5000 */
  readonly keepAliveTimeoutMs?: number
  /** On close, how long in-flight requests may finish before their connections are cut, in ms. @defaultValue 5000 */
  readonly closeTimeoutMs?: number
  /**
   * Open connections at most; connections beyond it are closed at once (the client sees a reset and
   * retries later), so idle or slow clients cannot exhaust the process's sockets. Near it, idle keep-alive
   * connections are closed first (see guardConnections). @defaultValue 1024
   */
  readonly maxConnections?: number
  /**
   * Open connections per client address at most (HTTP_MAX_CONNECTIONS_PER_CLIENT; IPv4-mapped IPv6 is the IPv4
   * client, other IPv6 is grouped by /64); a new connection past it is closed at once. @defaultValue 64
   */
  readonly maxConnectionsPerClient?: number
  /** Called for every connection the cap closes, with why (for `webhook_http_connections_closed_total`). @defaultValue none */
  readonly onConnectionClosed?: (reason: ConnectionCloseReason) => void
}

const positive = positiveInteger.bind(undefined, 'startHttpServer')

/** A listening server. */
export interface RunningHttpServer {
  /** Base URL, e.g. `http://127.0.0.1:8080` (loopback when listening on all interfaces). */
  readonly url: string
  readonly port: number
  readonly server: Server
  /** The open connections, in total and per client. */
  readonly connections: ConnectionGuard
  /** Stops accepting, closes idle keep-alive connections, lets in-flight requests finish (bounded). Idempotent. */
  close(): Promise<void>
}

/**
 * Listens on `address` (`":8080"`, `"127.0.0.1:0"`, a ListenAddress) with `handler`, with header, request and
 * keep-alive timeouts enforced (a client too slow to send its headers or body gets 408 and is disconnected)
 * and a cap on open connections.
 *
 * @example
 * const http = await startHttpServer('127.0.0.1:0', createRouter(routes))
 * await fetch(`${http.url}/webhooks/gh-main`, { method: 'POST', … })
 * await http.close()
 */
export async function startHttpServer(address: string | ListenAddress, handler: RequestListener, options: HttpServerOptions = {}): Promise<RunningHttpServer> {
  const { host, port } = typeof address === 'string' ? parseListenAddress(address) : address
  const closeTimeoutMs = positive('closeTimeoutMs', options.closeTimeoutMs, 5000)
  const headersTimeout = positive('headersTimeoutMs', options.headersTimeoutMs, 10_000)
  const requestTimeout = positive('requestTimeoutMs', options.requestTimeoutMs, 30_000)
  const server = createServer({
    headersTimeout, requestTimeout,
    keepAliveTimeout: positive('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 5000),
    // Node checks the two timeouts above only this often (30 s by default), so a slowloris client would keep
    // its connection for up to 30 s past the limit; check at a fraction of the shorter timeout instead
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(Math.min(headersTimeout, requestTimeout) / 4))),
  }, handler)
  const connections = guardConnections(server, {
    maxConnections: positive('maxConnections', options.maxConnections, 1024),
    maxPerClient: positive('maxConnectionsPerClient', options.maxConnectionsPerClient, 64),
    onClosed: options.onConnectionClosed,
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const bound = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: listenerUrl(host, bound),
    port: bound,
    server,
    connections,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), closeTimeoutMs)
        timer.unref()
        server.close(() => { clearTimeout(timer); resolve() })
        server.closeIdleConnections()
      })
      return closing
    },
  }
}

/**
 * The URL that reaches a listener on `host` and `port`: an all-interfaces host (`0.0.0.0`, `::`) as the loopback
 * address, an IPv6 address in brackets.
 *
 * @example
 * listenerUrl('0.0.0.0', 8088) // "http://127.0.0.1:8088"
 */
export function listenerUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
  return `http://${shown}:${port}`
}
