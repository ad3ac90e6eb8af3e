import type { Flags } from '../config/parse-flags.js'

/** Where a command writes and what it reads; tests pass their own. */
export interface CliIO {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly env: Readonly<Record<string, string | undefined>>
  /**
   * Progress of long work (`dlq retry --all`, `produce`), one line replacing the last; set only when stderr is a
   * terminal, so logs and pipes get the final count alone.
   */
  readonly progress?: (text: string) => void
}

/** One `hookstream <name>` command: positional arguments after the name, flags, and the exit code it returns. */
export type Command = (args: readonly string[], flags: Flags, io: CliIO) => Promise<number>

/** One flag a command accepts: a switch (`--json`) or a flag with a value (`--tool gh-main`). */
export interface FlagSpec {
  readonly type: 'boolean' | 'string'
  /** One line for `--help`. */
  readonly description: string
}

/** Flags by name, without the leading `--`. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>

/**
 * A `hookstream <name>` command as registered in the CLI: what it does, how it is called and every flag it
 * accepts besides the configuration flags (COMMON_FLAGS). Any other flag is a usage error (exit 2) before the
 * command runs, so a misspelled filter can never widen what a command touches.
 */
export interface CommandSpec {
  /** One line for `hookstream --help`. */
  readonly summary: string
  /** The usage lines `hookstream <name> --help` prints. */
  readonly usage: string
  /** The flags this command accepts (besides COMMON_FLAGS); `{}` when it takes none. */
  readonly flags: FlagSpecs
  readonly run: Command
}

/** Flags every command accepts: they select the configuration (see `loadConfig`). */
export const COMMON_FLAGS: FlagSpecs = {
  config: { type: 'string', description: 'YAML configuration file (also HOOKSTREAM_CONFIG)' },
  'redis-url': { type: 'string', description: 'Redis URL (REDIS_URL)' },
  'redis-addr': { type: 'string', description: 'Redis host:port (REDIS_ADDR)' },
  'database-url': { type: 'string', description: 'PostgreSQL URL (DATABASE_URL)' },
  consumer: { type: 'string', description: 'consumer name of this worker (WORKER_CONSUMER_NAME)' },
  'http-addr': { type: 'string', description: 'ingest listen address (HTTP_ADDR)' },
  'health-endpoint': { type: 'string', description: 'health and metrics listen address (HEALTH_ENDPOINT)' },
  'admin-addr': { type: 'string', description: 'admin API listen address, or off (ADMIN_ADDR)' },
  'log-level': { type: 'string', description: 'trace, debug, info, warn or error (LOG_LEVEL)' },
  help: { type: 'boolean', description: 'show this help' },
}

/** The `--json` flag of a command that prints. */
export const JSON_FLAG: FlagSpecs = { json: { type: 'boolean', description: 'print JSON instead of text' } }

/** The process's own IO. */
export const processIO: CliIO = {
  stdout: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  stderr: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  env: process.env,
  ...(process.stderr.isTTY ? { progress: (text: string) => void process.stderr.write(`\r\x1b[2K${text}`) } : {}),
}

/** Formats rows as an aligned text table (the CLI's default output; `--json` prints JSON instead). */
export function formatTable(rows: readonly Record<string, unknown>[], columns?: readonly string[]): string {
  if (rows.length === 0) return '(none)'
  const cols = columns ?? Object.keys(rows[0] as Record<string, unknown>)
  const cell = (v: unknown) => (v === null || v === undefined ? '' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v))
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd()
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n')
}
