import { register } from 'node:module'
import { ConfigError } from '../core/errors.js'

/** Libraries whose OpenTelemetry instrumentation OTEL_NODE_ENABLED_INSTRUMENTATIONS can switch on. */
export const INSTRUMENTATIONS = ['http', 'pg', 'ioredis'] as const
/** One of INSTRUMENTATIONS. */
export type InstrumentationName = (typeof INSTRUMENTATIONS)[number]

/**
 * The instrumentations OTEL_NODE_ENABLED_INSTRUMENTATIONS names (comma-separated, the variable of
 * OpenTelemetry's Node.js auto-instrumentation); unset or empty: none. Throws a ConfigError naming the variable
 * for an unknown name.
 *
 * @example
 * parseInstrumentations('http, pg') // ['http', 'pg']
 */
export function parseInstrumentations(raw: string | undefined): InstrumentationName[] {
  const names = (raw ?? '').split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== '')
  const bad = names.filter((n) => !(INSTRUMENTATIONS as readonly string[]).includes(n))
  if (bad.length > 0) {
    throw new ConfigError('OTEL_NODE_ENABLED_INSTRUMENTATIONS', `must be a comma-separated list of ${INSTRUMENTATIONS.join(', ')}; got unknown ${bad.map((b) => JSON.stringify(b)).join(', ')}`)
  }
  return [...new Set(names)] as InstrumentationName[]
}

/**
 * Switches on the OpenTelemetry instrumentation of `names`: incoming and outgoing `node:http` requests, `pg`
 * queries and `ioredis` commands become spans (exported once `startTracing` has an endpoint). Must run before
 * `pg` and `ioredis` are first imported: it registers import-in-the-middle's ESM hook, which patches them as they
 * load. Only the service entry point calls it; the packages are loaded only then.
 *
 * @example
 * await enableInstrumentations(parseInstrumentations(process.env.OTEL_NODE_ENABLED_INSTRUMENTATIONS))
 * const { COMMANDS } = await import('./command-registry.js')   // pg and ioredis load after the hook
 */
export async function enableInstrumentations(names: readonly InstrumentationName[]): Promise<void> {
  if (names.length === 0) return
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
  const { registerInstrumentations } = await import('@opentelemetry/instrumentation')
  const instrumentations = await Promise.all(names.map(async (name) => {
    switch (name) {
      case 'http': return new (await import('@opentelemetry/instrumentation-http')).HttpInstrumentation()
      case 'pg': return new (await import('@opentelemetry/instrumentation-pg')).PgInstrumentation()
      default: return new (await import('@opentelemetry/instrumentation-ioredis')).IORedisInstrumentation()
    }
  }))
  registerInstrumentations({ instrumentations })
}
