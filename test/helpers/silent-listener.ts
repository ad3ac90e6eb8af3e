/** A loopback listener that holds a port for tests of the harness's port-conflict paths. */
import { createServer, type Socket } from 'node:net'

/** A listener holding a port. */
export interface SilentListener {
  readonly port: number
  /** Closes the listener and cuts the connections it accepted. */
  close(): Promise<void>
}

/** Listens on a free 127.0.0.1 port, accepts connections and never answers (not a Redis, not HTTP). */
export async function silentListener(): Promise<SilentListener> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => { sockets.add(socket); socket.once('close', () => sockets.delete(socket)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      for (const socket of sockets) socket.destroy()
    }),
  }
}
