/** Runs `hookstream run` as a real child process (tsx on src/cli/main.ts) against the test servers. */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { freePort } from './servers.js'

export interface ServiceProcess {
  readonly child: ChildProcess
  readonly ingestUrl: string
  readonly healthUrl: string
  /** The admin listener (ADMIN_ADDR, a free port); it listens only when the env sets ADMIN_TOKEN. */
  readonly adminUrl: string
  readonly output: () => string
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>
}

/** Where and how `startServiceProcess` runs the service. */
export interface ServiceProcessOptions {
  /** The service's working directory (default: the repository's, where the tests run); `./.hookstream` is here. */
  cwd?: string
  /** The ingest port (HTTP_ADDR) the first attempt uses (default: a free one); for tests of the retry. */
  firstHttpPort?: number
  /** Run the compiled `dist/src/cli/main.js` with plain node, as the container does (`npm run build` first). @defaultValue false: src through tsx */
  compiled?: boolean
}

/**
 * Writes a YAML config with `tools` and starts the service; resolves once /health/ready answers 200. The ports
 * come from freePort(), which frees its probe before the service binds: when another process took one in between
 * (EADDRINUSE), the service is started again on fresh ports. An `env` value that is undefined removes that
 * variable from the service's environment.
 */
export async function startServiceProcess(env: Record<string, string | undefined>, yaml: string, args: string[] = [],
  options: ServiceProcessOptions = {}): Promise<ServiceProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-svc-'))
  const config = join(dir, 'hookstream.yaml')
  writeFileSync(config, yaml)
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(env, config, args, options.cwd ?? process.cwd(), attempt === 1 ? options.firstHttpPort : undefined, options.compiled ?? false)
    } catch (err) {
      if (attempt >= 3 || !(err as { addressInUse?: boolean }).addressInUse) throw err
    }
  }
}

async function startOnce(env: Record<string, string | undefined>, config: string, args: string[], cwd: string,
  httpPort: number | undefined, compiled: boolean): Promise<ServiceProcess> {
  const http = httpPort ?? await freePort()
  const health = await freePort()
  const admin = await freePort()
  // tsx and main.ts by path, so the service also starts in a directory outside the repository
  const tsx = pathToFileURL(join(process.cwd(), 'node_modules', 'tsx', 'dist', 'loader.mjs')).href
  const main = compiled ? [join(process.cwd(), 'dist/src/cli/main.js')] : ['--import', tsx, join(process.cwd(), 'src/cli/main.ts')]
  if (compiled && !existsSync(main[0] as string)) throw new Error(`${main[0]} does not exist; run npm run build first`)
  const child = spawn(process.execPath, [...main, 'run', '--config', config, ...args], {
    cwd,
    env: { ...process.env, HTTP_ADDR: `127.0.0.1:${http}`, HEALTH_ENDPOINT: `127.0.0.1:${health}`, ADMIN_ADDR: `127.0.0.1:${admin}`, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout?.on('data', (d) => { out += d })
  child.stderr?.on('data', (d) => { out += d })
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  const healthUrl = `http://127.0.0.1:${health}`
  // a busy machine (six engineers' test runs on two cores) can take tens of seconds to load tsx and connect
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) {
      throw Object.assign(new Error(`hookstream run exited early (${child.exitCode}):\n${out}`), { addressInUse: /EADDRINUSE/.test(out) })
    }
    const ok = await fetch(`${healthUrl}/health/ready`).then((r) => r.ok, () => false)
    if (ok) break
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`hookstream run not ready within 60 s:\n${out}`) }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { child, ingestUrl: `http://127.0.0.1:${http}`, healthUrl, adminUrl: `http://127.0.0.1:${admin}`, output: () => out, exited }
}
