import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { isIPv6, type Socket } from 'node:net'
import { positiveInteger } from '../core/positive-integer.js'

/** Why the guard closed a connection: the `reason` label of `webhook_http_connections_closed_total`. */
export const CONNECTION_CLOSE_REASONS = ['client_cap', 'max_connections', 'idle_reaped'] as const
/** One of CONNECTION_CLOSE_REASONS. */
export type ConnectionCloseReason = (typeof CONNECTION_CLOSE_REASONS)[number]

/** Options of `guardConnections`. */
export interface ConnectionGuardOptions {
  /** Open connections at most; a new one past it is closed at once (after idle keep-alive ones were reaped). */
  readonly maxConnections: number
  /** Open connections per client (`clientKey`) at most; a new one past it is closed at once. */
  readonly maxPerClient: number
  /** Called once for every connection the guard closes, with why. Must not throw. @defaultValue none */
  readonly onClosed?: (reason: ConnectionCloseReason) => void
}

/** What the guard tracks; for tests and health. */
export interface ConnectionGuard {
  /** Connections open right now. */
  readonly open: number
  /** Connections open right now from the client of `address` (any spelling `clientKey` maps to the same client). */
  openFrom(address: string): number
}

// expands an IPv6 address to its eight 16-bit groups (without a zone id); undefined when it is not one
function ipv6Groups(address: string): number[] | undefined {
  const bare = address.split('%')[0] as string
  if (!isIPv6(bare)) return undefined
  let text = bare
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)))
  const front = parse(head)
  const back = tail === undefined ? [] : parse(tail)
  return [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back]
}

/**
 * The client an address belongs to, for per-client limits: an IPv4 address as it is; an IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`, what a dual-stack listener sees for IPv4 clients) as its IPv4 address; any other IPv6
 * address as its /64 prefix, since one host is routinely given a whole /64 and could otherwise open its
 * connections from as many addresses as it likes. Forwarded-for headers are never read.
 *
 * @example
 * clientKey('::ffff:127.0.0.2') // '127.0.0.2'
 * clientKey('2001:db8:1:2:aa::1') // '2001:db8:1:2::/64'
 */
export function clientKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown'
  const groups = ipv6Groups(address)
  if (!groups) return address
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6)
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`
}

interface Tracked {
  readonly client: string
  /** Requests in progress on this connection (HTTP/1.1 pipelining may overlap them). */
  active: number
  /** Requests answered on this connection; a keep-alive connection with some answered and none active is idle. */
  served: number
  /** When the connection last became idle, in ms since the epoch. */
  idleSince: number
}

const positive = positiveInteger.bind(undefined, 'guardConnections')

/**
 * Caps the connections of `server` in total and per client address, so one client cannot hold the port:
 * a new connection from a client already at `maxPerClient` is closed at once, and so is one past
 * `maxConnections`. Under pressure (open connections within 1/16 of `maxConnections`), idle keep-alive
 * connections (answered at least one request, none in progress) are closed first, oldest first, so that a
 * new sender gets through. Connections still sending a request are left to the server's header and request
 * timeouts. Replaces `server.maxConnections`, which refuses the new connection instead of an idle one.
 *
 * @example
 * guardConnections(server, { maxConnections: 1024, maxPerClient: 64, onClosed: (reason) => metrics.connectionClosed('ingest', reason) })
 */
export function guardConnections(server: Server, options: ConnectionGuardOptions): ConnectionGuard {
  const maxConnections = positive('maxConnections', options.maxConnections)
  const maxPerClient = positive('maxPerClient', options.maxPerClient)
  const pressureAt = maxConnections - Math.max(1, Math.ceil(maxConnections / 16))
  const sockets = new Map<Socket, Tracked>()
  const perClient = new Map<string, number>()

  const close = (socket: Socket, reason: ConnectionCloseReason) => {
    socket.destroy()
    try {
      options.onClosed?.(reason)
    } catch {
      // a metrics bug must not keep a connection open
    }
  }

  const reapIdle = () => {
    const idle = [...sockets].filter(([, t]) => t.active === 0 && t.served > 0).sort(([, a], [, b]) => a.idleSince - b.idleSince)
    for (const [socket] of idle) {
      if (sockets.size < pressureAt) return
      // forget it now, not on 'close', so the new connection sees the room at once
      forget(socket)
      close(socket, 'idle_reaped')
    }
  }

  const forget = (socket: Socket) => {
    const tracked = sockets.get(socket)
    if (!tracked) return
    sockets.delete(socket)
    const left = (perClient.get(tracked.client) ?? 1) - 1
    if (left > 0) perClient.set(tracked.client, left)
    else perClient.delete(tracked.client)
  }

  server.on('connection', (socket: Socket) => {
    const client = clientKey(socket.remoteAddress)
    if ((perClient.get(client) ?? 0) >= maxPerClient) return close(socket, 'client_cap')
    if (sockets.size >= pressureAt) reapIdle()
    if (sockets.size >= maxConnections) return close(socket, 'max_connections')
    sockets.set(socket, { client, active: 0, served: 0, idleSince: Date.now() })
    perClient.set(client, (perClient.get(client) ?? 0) + 1)
    socket.once('close', () => forget(socket))
  })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const tracked = sockets.get(req.socket)
    if (!tracked) return
    tracked.active += 1
    res.once('close', () => {
      tracked.active -= 1
      tracked.served += 1
      tracked.idleSince = Date.now()
    })
  })
  return {
    get open() { return sockets.size },
    openFrom: (address) => perClient.get(clientKey(address)) ?? 0,
  }
}
