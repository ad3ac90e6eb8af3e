import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { resolve } from 'node:path'
import { ConfigError } from '../core/errors.js'

/** A `redis-server` this process started, with its data (AOF) in `dir`. */
export interface EmbeddedRedis {
  readonly url: string
  readonly dir: string
  /** Stops the server (SHUTDOWN with AOF fsync); a second call returns the same promise. */
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolvePort(port))
    })
  })
}

const ping = (port: number) => new Promise<boolean>((done) => {
  const sock = connect(port, '127.0.0.1')
  sock.once('error', () => done(false))
  sock.once('connect', () => sock.write('PING\r\n'))
  sock.once('data', (d) => { done(d.toString().startsWith('+PONG')); sock.destroy() })
})

/**
 * Starts `redis-server` from PATH on a free loopback port with AOF persistence in `dir`, for running hookstream
 * without a Redis of your own (no REDIS_URL / REDIS_ADDR). Fails with a message saying how to install Redis
 * when it is missing.
 *
 * @example
 * const redis = await startEmbeddedRedis('./.hookstream/redis'); console.log(redis.url)
 */
export async function startEmbeddedRedis(dir: string): Promise<EmbeddedRedis> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  if (which.status !== 0) {
    throw new ConfigError('REDIS_URL', 'is not set and redis-server is not on PATH, so no embedded Redis can start; ' +
      'install Redis 7 (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL=redis://host:6379')
  }
  const abs = resolve(dir)
  mkdirSync(abs, { recursive: true })
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', abs,
    '--appendonly', 'yes', '--save', '', '--protected-mode', 'yes'], { stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<void>((done) => child.once('exit', () => done()))
  const deadline = Date.now() + 10_000
  while (!(await ping(port))) {
    if (child.exitCode !== null) throw new Error(`embedded redis-server exited with code ${child.exitCode}; see its output above`)
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error('embedded redis-server did not answer within 10 s') }
    await new Promise((r) => setTimeout(r, 50))
  }
  let stopping: Promise<void> | undefined
  return {
    url: `redis://127.0.0.1:${port}`,
    dir: abs,
    stop: () => (stopping ??= (async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited } })()),
  }
}
