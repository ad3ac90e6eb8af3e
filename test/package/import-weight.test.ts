import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Imports `specifier` in a fresh Node process (through tsx, which maps `hookstream` to src/index.ts as the
 * package's "exports" map it to dist/) and returns every OpenTelemetry module URL that process resolved.
 */
function otelModulesLoadedBy(specifier: string, names: readonly string[]): string[] {
  const probe = `
    import { registerHooks } from 'node:module'
    const seen = new Set()
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r } })
    const m = await import(${JSON.stringify(specifier)})
    for (const name of ${JSON.stringify(names)}) if (typeof m[name] !== 'function') throw new Error(name + ' is not exported')
    console.log(JSON.stringify([...seen].filter((u) => u.includes('/@opentelemetry/'))))`
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  assert.is(child.status, 0, child.stderr)
  return JSON.parse(child.stdout.trim().split('\n').pop() as string) as string[]
}

const sdk = (urls: readonly string[]) => [...new Set(urls.map((u) => /\/@opentelemetry\/([^/]+)\//.exec(u)?.[1] ?? u))].filter((p) => p !== 'api')

test('importing fromRedisStream and webhookPipeline from hookstream loads @opentelemetry/api and no SDK, exporter or resource module', () => {
  const loaded = otelModulesLoadedBy('hookstream', ['fromRedisStream', 'webhookPipeline'])
  assert.ok(loaded.length > 0, 'the probe sees @opentelemetry/api being loaded')
  assert.equal(sdk(loaded), [])
})

test('the service entry point\'s tracing setup does load the SDK (the probe can see it)', () => {
  const loaded = sdk(otelModulesLoadedBy('./src/observability/start-tracing.ts', ['startTracing']))
  for (const pkg of ['sdk-trace', 'exporter-trace-otlp-http', 'resources']) assert.ok(loaded.includes(pkg), `${pkg} in ${loaded.join(', ')}`)
})

test.run()
