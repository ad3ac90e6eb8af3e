/**
 * A TCP proxy on loopback in front of a Redis server, for tests of replies that are lost or late: every chunk
 * Redis sends goes through `onReply`, which forwards it (true) or keeps it back (false).
 */
import { connect, createServer, type Server, type Socket } from 'node:net'

/** One client connection through the proxy. */
export interface ProxiedConnection {
  /** Writes to the client as if Redis had sent it now. */
  send(chunk: Buffer): void
  /** Cuts both sides, as a failing network or Redis would. */
  cut(): void
}

/** A running proxy. */
export interface RedisProxy {
  /** `redis://127.0.0.1:<proxy port>` */
  readonly url: string
  close(): Promise<void>
}

/**
 * Starts a proxy to `127.0.0.1:<redisPort>`.
 *
 * @example
 * const proxy = await startRedisProxy(port, (chunk, conn) => !chunk.includes('marker') || (conn.cut(), false))
 */
export async function startRedisProxy(redisPort: number, onReply: (chunk: Buffer, connection: ProxiedConnection) => boolean): Promise<RedisProxy> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(redisPort, '127.0.0.1')
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}) }
    const connection: ProxiedConnection = {
      send: (chunk) => { if (!client.destroyed) client.write(chunk) },
      cut: () => { client.destroy(); upstream.destroy() },
    }
    client.on('data', (d) => upstream.write(d))
    upstream.on('data', (d: Buffer) => { if (onReply(d, connection)) client.write(d) })
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }),
  }
}
