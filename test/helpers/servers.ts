/**
 * Throwaway Redis and PostgreSQL servers for tests and benchmarks: real servers on free loopback ports, in
 * temp dirs, stopped when the process exits (also on failure or Ctrl-C). With REDIS_URL / DATABASE_URL set,
 * `sharedRedis()` / `sharedPostgres()` use those servers instead; tests that stop and restart a server always
 * start their own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, chownSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'

const cleanups = new Set<() => void>()
let exitHooked = false

function onExit(fn: () => void): void {
  if (!exitHooked) {
    exitHooked = true
    process.on('exit', () => { for (const f of cleanups) { try { f() } catch { /* best effort at exit */ } } })
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => process.exit(130))
    }
  }
  cleanups.add(fn)
}

/** A port the kernel just handed out on 127.0.0.1 (free unless someone grabs it in between). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(50)
  }
  throw new Error(`test harness: ${what} did not become ready within ${timeoutMs} ms`)
}

// ---------------------------------------------------------------------------------------------- Redis

export interface TestRedis {
  readonly url: string
  readonly port: number
  /** Stops the server (SHUTDOWN NOSAVE via SIGTERM; with AOF on, data written so far survives). */
  stop(): Promise<void>
  /** Starts it again on the same port and data dir. */
  start(): Promise<void>
  /** SIGKILL, no chance to persist anything. */
  kill(): Promise<void>
  /** The server's data dir (AOF files live here). */
  readonly dir: string
  /** The `extraPorts` free ports of the attempt that started (see {@link StartRedisOptions}). */
  readonly extraPorts: readonly number[]
}

/** How `startRedis` starts its server. */
export interface StartRedisOptions {
  /** AOF persistence (default off). */
  appendonly?: boolean
  /**
   * How many more free loopback ports to pick with the server's port (default 0), for arguments such as
   * `--tls-port` or `--cluster-port`; a start that fails on a taken port picks all of them afresh.
   */
  extraPorts?: number
  /** More `redis-server` arguments; as a function, it gets the attempt's extra ports. */
  args?: readonly string[] | ((extraPorts: readonly number[]) => readonly string[])
  /** The port the first attempt binds (default: a free one); when it is taken, the start moves to a free one. */
  firstPort?: number
}

/**
 * Starts a fresh `redis-server` (Redis ≥ 7, from PATH) on a free loopback port; when a port it picked was taken
 * before the server bound it, it starts again on fresh ports (up to 5 attempts).
 *
 * @example
 * const redis = await startRedis({ appendonly: true }); … ; await redis.stop()
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  const pickExtraPorts = async () => {
    const ports: number[] = []
    for (let i = 0; i < (options.extraPorts ?? 0); i++) ports.push(await freePort())
    return ports
  }
  let port = options.firstPort ?? await freePort()
  let extraPorts = await pickExtraPorts()
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-redis-'))
  let child: ChildProcess | undefined
  const args = () => ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', options.appendonly ? 'yes' : 'no', '--appendfsync', 'everysec',
    ...(typeof options.args === 'function' ? options.args(extraPorts) : options.args ?? [])]

  // the server on the port must be the one we spawned: a PONG from another test's Redis that took the port
  // between freePort() and the spawn is not good enough
  const ownedBy = (pid: number) => new Promise<boolean>((resolve) => {
    const sock = connect(port, '127.0.0.1')
    let reply = ''
    // something on the port that accepts and never answers (not a Redis) must not stall the wait for good
    sock.setTimeout(2000, () => sock.destroy())
    sock.once('error', () => resolve(false))
    sock.once('connect', () => sock.write('INFO server\r\n'))
    sock.on('data', (d) => {
      reply += d.toString()
      const m = /process_id:(\d+)/.exec(reply)
      if (m) { resolve(Number(m[1]) === pid); sock.destroy() }
    })
    sock.once('close', () => resolve(false))
  })

  const spawnOnce = async () => {
    const proc = spawn('redis-server', args(), { stdio: ['ignore', 'pipe', 'pipe'] })
    proc.unref()
    let output = ''
    for (const s of [proc.stdout, proc.stderr] as (NodeJS.ReadableStream & { unref?: () => void })[]) {
      s.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000) })
      s.unref?.()
    }
    let startError: Error | undefined
    proc.once('error', (err) => {
      startError = new Error(`test harness: cannot start redis-server (${err.message}); install Redis 7 (apt-get install redis-server)`)
    })
    // 'close' comes after the exit and the last of its output (the bind error a retry looks for)
    let closed = false
    proc.once('close', () => { closed = true })
    child = proc
    // waitFor treats a throwing check as "not ready yet", so an exit ends the wait and is thrown after it
    await waitFor(`redis-server on port ${port}`, async () => startError !== undefined || closed || ownedBy(proc.pid!))
    if (startError) throw startError
    if (closed) {
      throw Object.assign(new Error(`test harness: redis-server on port ${port} exited at start:\n${output}`), { addressInUse: /already in use|bind/i.test(output) })
    }
  }
  // freePort() closes its probe before redis-server binds: another process may take a port in between, so
  // the first start tries a few fresh sets of ports; a restart (start() after stop()) keeps its ports
  let started = false
  const start = async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        await spawnOnce()
        started = true
        return
      } catch (err) {
        if (started || attempt >= 5 || !(err as { addressInUse?: boolean }).addressInUse) throw err
        port = await freePort()
        extraPorts = await pickExtraPorts()
      }
    }
  }
  const waitExit = async (proc: ChildProcess) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    // the child is unref'd so it never keeps a finished test run alive; while we wait for it, it must
    proc.ref()
    await new Promise((resolve) => proc.once('exit', resolve))
  }
  onExit(() => { child?.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) })
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    extraPorts,
    async stop() {
      const proc = child
      if (!proc) return
      child = undefined
      proc.kill('SIGTERM')
      await waitExit(proc)
    },
    start,
    async kill() {
      const proc = child
      if (!proc) return
      child = undefined
      proc.kill('SIGKILL')
      await waitExit(proc)
    },
  }
}

/**
 * Caches what `start` resolves to (one server for the whole test process); a start that failed is forgotten,
 * so the next caller tries again and sees its own error, instead of every later suite failing on the first.
 */
export function cached<T>(start: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined
  return () => {
    pending ??= start().catch((err: unknown) => {
      pending = undefined
      throw err
    })
    return pending
  }
}

/** One Redis for the whole test process (REDIS_URL when set). Give each test its own key prefix. */
export const sharedRedis: () => Promise<{ url: string }> = cached(async () =>
  process.env.REDIS_URL ? { url: process.env.REDIS_URL } : startRedis())

// ----------------------------------------------------------------------------------------- PostgreSQL

function pgBinDir(): string {
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' })
  if (which.status === 0 && which.stdout.trim()) return join(which.stdout.trim(), '..')
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : []
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin')
  throw new Error('test harness: PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; install postgresql')
}

const isRoot = process.getuid?.() === 0
function pgUser(): { uid: number; gid: number } | undefined {
  if (!isRoot) return undefined
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
  if (id.status !== 0) throw new Error('test harness: running as root needs a "postgres" user to run PostgreSQL (apt-get install postgresql creates one)')
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

function runPg(bin: string, args: string[]): { status: number | null; output: string } {
  const cmd = isRoot ? ['runuser', '-u', 'postgres', '--', bin, ...args] : [bin, ...args]
  const res = spawnSync(cmd[0] as string, cmd.slice(1), { encoding: 'utf8' })
  return { status: res.status, output: `${res.stdout}${res.stderr}` }
}

function chownTree(path: string, owner: { uid: number; gid: number } | undefined): void {
  if (!owner) return
  spawnSync('chown', ['-R', `${owner.uid}:${owner.gid}`, path])
}

let template: string | undefined
function templateCluster(bin: string): string {
  if (template) return template
  const owner = pgUser()
  const base = mkdtempSync(join(tmpdir(), 'hookstream-pgtemplate-'))
  if (owner) chownSync(base, owner.uid, owner.gid)
  const data = join(base, 'data')
  const res = runPg(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'])
  if (res.status !== 0) throw new Error(`test harness: initdb failed:\n${res.output}`)
  onExit(() => rmSync(base, { recursive: true, force: true }))
  template = data
  return data
}

export interface TestPostgres {
  /** URL of the `postgres` database. */
  readonly url: string
  readonly port: number
  /** Creates a fresh database and returns its URL. */
  createDatabase(name?: string): Promise<string>
  /** Fast shutdown (`pg_ctl stop -m fast`): connections are cut. */
  stop(): Promise<void>
  start(): Promise<void>
}

/**
 * Starts a fresh PostgreSQL cluster (copied from a per-process template made by initdb) on a free loopback
 * port; as root, it runs as the `postgres` user.
 *
 * @example
 * const db = await startPostgres(); const url = await db.createDatabase()
 */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = pgBinDir()
  const tpl = templateCluster(bin)
  const owner = pgUser()
  let port = 0
  const base = mkdtempSync(join(tmpdir(), 'hookstream-pg-'))
  const data = join(base, 'data')
  cpSync(tpl, data, { recursive: true })
  // Node 24's cpSync creates the top directory 0755 (Node 20 kept initdb's 0700), and PostgreSQL refuses to
  // start on a data directory others can read
  chmodSync(data, 0o700)
  chownTree(base, owner)
  const usePort = async () => {
    port = await freePort()
    writeFileSync(join(data, 'postgresql.auto.conf'),
      `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${base}'\n` +
      `fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n`)
    chownTree(data, owner)
  }
  let running = false
  const url = () => `postgres://postgres@127.0.0.1:${port}/postgres`
  const start = async () => {
    const res = runPg(join(bin, 'pg_ctl'), ['-D', data, '-l', join(base, 'log'), '-w', '-t', '30', 'start'])
    if (res.status !== 0) {
      const log = existsSync(join(base, 'log')) ? readFileSync(join(base, 'log'), 'utf8').slice(-4000) : ''
      throw Object.assign(new Error(`test harness: pg_ctl start failed:\n${res.output}\n${log}`), { addressInUse: /already in use|could not bind/i.test(log) })
    }
    running = true
  }
  const stop = async () => {
    if (!running) return
    running = false
    runPg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'])
  }
  onExit(() => {
    if (running) runPg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'])
    rmSync(base, { recursive: true, force: true })
  })
  // freePort() closes its probe before PostgreSQL binds: another process may take the port in between, so
  // the first start tries a few fresh ports (a later start() keeps the port)
  for (let attempt = 1; ; attempt++) {
    await usePort()
    try {
      await start()
      break
    } catch (err) {
      if (attempt >= 5 || !(err as { addressInUse?: boolean }).addressInUse) throw err
    }
  }
  await waitFor(`postgres on port ${port}`, async () => {
    const c = new pg.Client({ connectionString: url() })
    await c.connect()
    await c.end()
    return true
  })
  return { url: url(), port, start, stop, createDatabase: (name) => createDatabase(url(), name) }
}

let counter = 0
async function createDatabase(adminUrl: string, name?: string): Promise<string> {
  const db = name ?? `t_${process.pid}_${Date.now().toString(36)}_${counter++}`
  const c = new pg.Client({ connectionString: adminUrl })
  await c.connect()
  try {
    await c.query(`CREATE DATABASE "${db}"`)
  } finally {
    await c.end()
  }
  const u = new URL(adminUrl)
  u.pathname = `/${db}`
  return u.toString()
}

/** One PostgreSQL for the whole test process (DATABASE_URL when set). Use `createDatabase()` per suite. */
export const sharedPostgres: () => Promise<{ url: string; createDatabase(name?: string): Promise<string> }> = cached(async () => {
  const external = process.env.DATABASE_URL
  return external ? { url: external, createDatabase: (name?: string) => createDatabase(external, name) } : startPostgres()
})
