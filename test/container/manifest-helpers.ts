/**
 * Helpers for the deployment-manifest tests: read YAML files of the repository, and run hookstream's own
 * `loadConfig` over the environment a manifest sets, recording which variables it actually reads.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { createHealth, startHealthServer, type HealthServer } from '../../src/http/health.js'
import { loadConfig, type Config } from '../../src/config/load-config.js'

/** The repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Reads a repository file as text. */
export function readText(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8')
}

/** Parses a repository YAML file with one document. */
export function readYaml<T = any>(path: string): T {
  return parse(readText(path)) as T
}

/** Parses every document of a repository YAML file (errors fail the test). */
export function readYamlDocuments(path: string): any[] {
  return parseAllDocuments(readText(path)).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`)
    return doc.toJS()
  })
}

/** What `configFromEnv` found. */
export interface EnvConfig {
  readonly config: Config
  /** Names of the environment variables loadConfig looked at. */
  readonly read: ReadonlySet<string>
}

/**
 * Runs `loadConfig` on `env` as a container would see it. The config file the env names (HOOKSTREAM_CONFIG) is
 * replaced by `fileText`, written to a temp file, since the container path does not exist here.
 */
export function configFromEnv(env: Record<string, string>, fileText?: string): EnvConfig {
  const read = new Set<string>()
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-manifest-'))
  try {
    const values: Record<string, string> = { ...env }
    if (fileText !== undefined) {
      const path = join(dir, 'hookstream.yaml')
      writeFileSync(path, fileText)
      values.HOOKSTREAM_CONFIG = path
    }
    const recording = new Proxy(values, {
      get(target, name) {
        if (typeof name === 'string') read.add(name)
        return target[name as string]
      },
    })
    return { config: loadConfig({ env: recording }), read }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A real health server (stub checks that all pass) on a free loopback port, as the service serves it. */
export async function healthyServer(): Promise<{ server: HealthServer; close(): Promise<void> }> {
  const health = createHealth({
    checkDatabase: async () => ({}),
    checkRedis: async () => ({}),
    checkQueue: async () => ({ depth: 0, lag: 0, pending: 0, oldestPendingAgeSeconds: 0, groupExists: true }),
    worker: () => ({ inFlight: 0, processed: 0, shuttingDown: false }),
  })
  const server = await startHealthServer(health, { port: 0, host: '127.0.0.1' })
  return { server, close: async () => { await server.close(); health.close() } }
}
