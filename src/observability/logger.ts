import { pino, stdSerializers, type DestinationStream, type Level, type Logger } from 'pino'
import { ConfigError } from '../core/errors.js'
import { maskUrlsInText } from '../core/mask-url.js'

/** The pino logger type `createLogger` returns. */
export type { Logger } from 'pino'

/** What a redacted value is replaced with. */
export const REDACTED = '[REDACTED]'

const SECRET_KEYS = ['secret', 'password', 'token', 'authorization', 'apiKey', 'api_key', 'accessToken', 'access_token']
const SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-hub-signature-256',
  'x-hub-signature', 'x-gitlab-token', 'webhook-signature', 'x-api-key']
const URL_KEYS = ['url', 'databaseUrl', 'redisUrl', 'DATABASE_URL', 'REDIS_URL', 'connectionString']

/**
 * The pino redact paths: secret-like keys at the top level and two levels down, tools' secrets, and the signature,
 * token and cookie headers under `headers` (top level or one/two levels down, as in `req.headers`).
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
  'tools[*].secret',
  ...SECRET_HEADERS.flatMap((h) => [`headers["${h}"]`, `*.headers["${h}"]`, `*.*.headers["${h}"]`]),
])

const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace']
/**
 * Masks every URL in `text` the way `maskUrl` does (password, token user name, query values).
 *
 * @example
 * maskUrlCredentials('postgres://app:s3cret@db:5432/hooks') // 'postgres://app:****@db:5432/hooks'
 */
export function maskUrlCredentials(text: string): string {
  return maskUrlsInText(text)
}

// what pino's error serializer makes of an error (and of each inner error: AggregateError's, error-valued fields)
const SERIALIZED_ERROR = Object.getPrototypeOf(stdSerializers.err(new Error('probe'))) as object

// copy-on-write walk: the object comes back unchanged (same reference) unless some string held credentials. An
// error anywhere is serialised first (message and stack with its causes', inner errors, its fields), so nothing
// of it reaches the line unmasked
function maskDeep(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return maskUrlCredentials(value)
  if (depth > 8 || typeof value !== 'object' || value === null) return value
  if (value instanceof Error) return maskDeep({ ...stdSerializers.err(value) }, depth)
  if (Array.isArray(value)) {
    let out: unknown[] | undefined
    value.forEach((v, i) => {
      const m = maskDeep(v, depth + 1)
      if (m !== v) (out ??= [...value])[i] = m
    })
    return out ?? value
  }
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null && proto !== SERIALIZED_ERROR) return value
  let out: Record<string, unknown> | undefined
  for (const [k, v] of Object.entries(value)) {
    const m = maskDeep(v, depth + 1)
    if (m !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = m
  }
  return out ?? value
}

/** Options of `createLogger`. */
export interface LoggerOptions {
  /** Lowest level written: fatal, error, warn, info, debug or trace (LOG_LEVEL). @defaultValue "info" */
  readonly level?: string
  /** Where JSON lines go. @defaultValue stdout */
  readonly destination?: DestinationStream
  /** Added to every line as `name`. @defaultValue "hookstream" */
  readonly name?: string
}

/**
 * Creates the service's pino logger: JSON lines, secrets redacted ({@link REDACT_PATHS}), and URLs masked as
 * `maskUrl` does wherever they appear: the message (format arguments included), any string field, and every error
 * under any key (message and stack with its causes', AggregateError's inner errors, an error's own fields).
 *
 * @example
 * const log = createLogger({ level: process.env.LOG_LEVEL ?? 'info' })
 * log.info({ tool: { id: 'gh-main', secret: 's3cret' } }, 'tool loaded') // secret → "[REDACTED]"
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info'
  if (!(LEVELS as readonly string[]).includes(level) && level !== 'silent') {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LEVELS.join(', ')} or silent; got "${level}"`)
  }
  const maskString = (v: unknown) => (typeof v === 'string' ? maskUrlCredentials(v) : v)
  const serializers: Record<string, (v: unknown) => unknown> = Object.fromEntries(URL_KEYS.map((k) => [k, maskString]))
  serializers.err = (err: unknown) => maskDeep(err, 0)
  // the message after format arguments were put in (`log.error('failed: %s', err)`)
  serializers.msg = maskString
  return pino({
    name: options.name ?? 'hookstream',
    level,
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    serializers,
    formatters: {
      log: (obj) => maskDeep(obj, 0) as Record<string, unknown>,
      bindings: (bindings) => maskDeep(bindings, 0) as Record<string, unknown>,
    },
  }, options.destination ?? pino.destination(1))
}

/**
 * A child logger whose lines carry the event's id and trace id, for everything logged about one event.
 *
 * @example
 * const log = eventLogger(logger, { eventId: event.id, traceId: trace.getSpanContext(env.trace)?.traceId })
 * log.warn({ code: failure.code }, 'event dead-lettered')
 */
export function eventLogger(logger: Logger, ids: { eventId: string; traceId?: string | undefined; toolId?: string }): Logger {
  return logger.child({
    event_id: ids.eventId,
    ...(ids.traceId ? { trace_id: ids.traceId } : {}),
    ...(ids.toolId ? { tool_id: ids.toolId } : {}),
  })
}
