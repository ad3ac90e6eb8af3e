import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
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

// the process id of the Redis answering on the port, or undefined while nothing answers: a Redis that another
// program started on the same port (it took the port between our probe and our spawn) is not ours
const serverPid = (port: number) => new Promise<number | undefined>((done) => {
  const sock = connect(port, '127.0.0.1')
  let reply = ''
  const finish = (pid: number | undefined) => { sock.destroy(); done(pid) }
  sock.setTimeout(2_000, () => finish(undefined))
  sock.once('error', () => finish(undefined))
  sock.once('connect', () => sock.write('INFO server\r\n'))
  sock.on('data', (d) => {
    reply += d.toString()
    const match = /process_id:(\d+)/.exec(reply)
    if (match) finish(Number(match[1]))
    else if (reply.length > 65_536 || reply.startsWith('-')) finish(undefined)
  })
})

/** Options of `startEmbeddedRedis`. */
export interface EmbeddedRedisOptions {
  /** The port to try first; when it is taken, another free one is used. @defaultValue a free loopback port */
  readonly port?: number
}

/**
 * Starts `redis-server` from PATH on a free loopback port with AOF persistence in `dir`, for running hookstream
 * without a Redis of your own (no REDIS_URL / REDIS_ADDR). It uses the server only once `INFO` on the port names
 * the process it spawned, and tries up to five ports when one is taken. Fails with a message saying how to install
 * Redis when it is missing.
 *
 * @example
 * const redis = await startEmbeddedRedis('./.hookstream/redis'); console.log(redis.url)
 */
export async function startEmbeddedRedis(dir: string, options: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  if (which.status !== 0) {
    throw new ConfigError('REDIS_URL', 'is not set and redis-server is not on PATH, so no embedded Redis can start; ' +
      'install Redis 7 (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL=redis://host:6379')
  }
  const abs = resolve(dir)
  mkdirSync(abs, { recursive: true })
  let started: { port: number; child: ChildProcess; exited: Promise<void> } | undefined
  for (let attempt = 1; !started; attempt++) {
    const port = attempt === 1 && options.port !== undefined ? options.port : await freePort()
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', abs,
      '--appendonly', 'yes', '--save', '', '--protected-mode', 'yes'], { stdio: ['ignore', 'ignore', 'inherit'] })
    const exited = new Promise<void>((done) => child.once('exit', () => done()))
    const deadline = Date.now() + 10_000
    let pid: number | undefined
    while ((pid = await serverPid(port)) !== child.pid) {
      // exited at once: most often the port was taken between the probe and the spawn; try another one
      if (child.exitCode !== null) break
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`embedded redis-server did not answer on 127.0.0.1:${port} within 10 s`) }
      await new Promise((r) => setTimeout(r, 50))
    }
    if (pid === child.pid) { started = { port, child, exited }; break }
    if (attempt >= 5) throw new Error(`embedded redis-server exited with code ${child.exitCode} on 5 ports in a row; see its output above`)
  }
  const { port, child, exited } = started
  let stopping: Promise<void> | undefined
  return {
    url: `redis://127.0.0.1:${port}`,
    dir: abs,
    stop: () => (stopping ??= (async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited } })()),
  }
}
