import { ConfigError } from '../core/errors.js'

/** A parsed `host:port` listen address. */
export interface ListenAddress {
  /** `0.0.0.0` when the text gave no host (`":8080"`); IPv6 without brackets (`::1`). */
  readonly host: string
  readonly port: number
}

/**
 * Parses a listen address: `":8080"` (all IPv4 interfaces), `"127.0.0.1:9000"`, `"localhost:80"`,
 * `"[::1]:80"`. Throws a ConfigError naming `key` (the setting it came from) otherwise.
 *
 * @example
 * parseListenAddress(':8080') // { host: '0.0.0.0', port: 8080 }
 * parseListenAddress('[::1]:80', 'HEALTH_ENDPOINT') // { host: '::1', port: 80 }
 */
export function parseListenAddress(text: string, key = 'HTTP_ADDR'): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(text.trim())
  const port = Number(m?.[3])
  if (!m || port > 65535) {
    throw new ConfigError(key, `must be a listen address such as ":8080", "127.0.0.1:8080" or "[::1]:8080"; got ${JSON.stringify(text)}`)
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port }
}

// why a listener could not start, and what to do, by the code of Node's error
const LISTEN_PROBLEMS: Readonly<Record<string, readonly [problem: string, fix: string]>> = {
  // the other listener may be this process's own: HTTP_ADDR, ADMIN_ADDR and HEALTH_ENDPOINT set to one port
  EADDRINUSE: ['is in use already', 'stop the process listening there, or give HTTP_ADDR, ADMIN_ADDR and HEALTH_ENDPOINT different ports'],
  EACCES: ['this process lacks the privileges to listen on', 'choose a port from 1024 up, or grant the privilege'],
  EADDRNOTAVAIL: ['is not an address of this machine', 'choose one of its addresses, or ":<port>" for all of them'],
  ENOTFOUND: ['is a host name this machine cannot resolve', 'correct the host name, or give an IP address'],
  EAI_AGAIN: ['is a host name this machine cannot resolve', 'correct the host name, or give an IP address'],
}

/**
 * Runs `listen` (the start of a server on `address`) and turns an address the process cannot take (in use, not
 * permitted, not on this machine, a host name that does not resolve) into a ConfigError naming `key`, so
 * startup says which setting to change instead of printing Node's stack trace. Other errors pass through.
 *
 * @example
 * const server = await listenOn('HEALTH_ENDPOINT', config.health.endpoint, () => startHealthServer(health, config.health.endpoint))
 */
export async function listenOn<T>(key: string, address: ListenAddress, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code
    const known = code === undefined ? undefined : LISTEN_PROBLEMS[code]
    if (known === undefined) throw err
    const shown = address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
    throw new ConfigError(key, `is ${shown}, which ${known[0]} (${code}); ${known[1]}`)
  }
}
