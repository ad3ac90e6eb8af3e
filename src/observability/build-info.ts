import { readFileSync } from 'node:fs'
import { Gauge, type Registry } from 'prom-client'

let version: string | undefined

/**
 * hookstream's version from its package.json (found from this file upwards, so it works from src/ and dist/src/);
 * "unknown" when no hookstream package.json is found.
 *
 * @example
 * hookstreamVersion() // "0.1.0"
 */
export function hookstreamVersion(): string {
  if (version !== undefined) return version
  version = 'unknown'
  for (let dir = new URL('./', import.meta.url); dir.pathname !== '/'; dir = new URL('../', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'hookstream' && typeof pkg.version === 'string') {
        version = pkg.version
        break
      }
    } catch {
      // no package.json at this level: look one up
    }
  }
  return version
}

/**
 * Registers `hookstream_build_info{version,node}`, always 1, so dashboards can show which release and Node.js
 * version each process runs (join it on `instance`).
 *
 * @example
 * registerBuildInfo(registry) // hookstream_build_info{version="0.1.0",node="24.11.0"} 1
 */
export function registerBuildInfo(registry: Registry): void {
  new Gauge({
    name: 'hookstream_build_info', help: 'Always 1; the labels say which hookstream version and Node.js version this process runs.',
    labelNames: ['version', 'node'], registers: [registry],
  }).labels(hookstreamVersion(), process.versions.node).set(1)
}
