import { buildConnector } from 'undici'
import type { EgressPolicy } from './ssrf-guard.js'

// errors after which the next checked address of the host is tried
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])

/** Options of `createPinnedConnector`. */
export interface PinnedConnectorOptions {
  /** The policy that resolves a host once and approves (or refuses) its addresses. */
  readonly policy: EgressPolicy
  /** Time for the DNS answer and, separately, for the TCP/TLS handshake (ms). @defaultValue 10000 */
  readonly timeoutMs?: number
}

/**
 * An undici connector that resolves the destination's host ONCE through the egress policy, checks every
 * address, and opens the socket to the approved address itself (TLS still verifies the certificate for the
 * host name), so a second DNS answer can never redirect the connection (DNS rebinding). A refused address
 * fails the connect with EgressRefusedError before any socket is created.
 *
 * @example
 * new Agent({ connect: createPinnedConnector({ policy: createEgressPolicy({ allowPrivate: false }) }) })
 */
export function createPinnedConnector(options: PinnedConnectorOptions): buildConnector.connector {
  const timeoutMs = options.timeoutMs ?? 10_000
  const connect = buildConnector({ timeout: timeoutMs })
  return (opts, callback) => {
    let timer: NodeJS.Timeout | undefined
    const answer = Promise.race([options.policy.resolve(opts.hostname), new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`no DNS answer for "${opts.hostname}" within ${timeoutMs} ms`), { code: 'EAI_AGAIN' })), timeoutMs)
    })])
    answer.then((addresses) => {
      clearTimeout(timer)
      // `host` (the name) stays, so TLS takes its server name (SNI, certificate check) from it; the socket goes
      // to a checked address. Plain HTTP gets no server name: undici would otherwise resolve that name again.
      // An address that does not answer is followed by the next checked one (as Node's happy eyeballs would).
      const attempt = (i: number) => {
        connect({ ...opts, hostname: addresses[i]!.address, ...(opts.protocol === 'https:' ? {} : { servername: undefined }) }, (err, socket) => {
          if (err && i + 1 < addresses.length && CONNECT_ERRORS.has((err as { code?: string }).code ?? '')) attempt(i + 1)
          else if (err) callback(err, null)
          else callback(null, socket!)
        })
      }
      attempt(0)
    }, (err: Error) => {
      clearTimeout(timer)
      callback(err, null)
    })
  }
}
