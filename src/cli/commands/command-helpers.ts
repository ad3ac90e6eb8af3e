import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { isPipelineError } from '../../core/errors.js'
import type { Flags } from '../../config/parse-flags.js'
import type { CliIO } from '../command.js'
import { openContext, type CliContext } from '../context.js'

/** A wrong command line (exit 2, nothing was done): the message says what to type instead. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** The command line was right but the work could not be done, e.g. the entry does not exist (exit 1). */
export class CommandFailure extends Error {
  override readonly name = 'CommandFailure'
}

/**
 * Opens the CLI context, runs `fn` with it and closes it. A UsageError is printed to stderr as
 * `hookstream <command>: <message>` and exits 2; a CommandFailure, ConfigError or PipelineError the same way
 * with exit 1; anything else is re-thrown (a bug).
 *
 * @example
 * export const fooCommand: Command = (args, flags, io) => withContext('foo', flags, io, async (ctx) => { … return 0 })
 */
export async function withContext(command: string, flags: Flags, io: CliIO, fn: (ctx: CliContext) => Promise<number>,
  options: { needRedis?: boolean; migrate?: boolean } = {}): Promise<number> {
  let ctx: CliContext | undefined
  try {
    ctx = await openContext(flags, io, options)
    return await fn(ctx)
  } catch (err) {
    const e = err as Error
    if (e instanceof UsageError || e instanceof CommandFailure || e?.name === 'ConfigError' || isPipelineError(err)) {
      io.stderr(`hookstream ${command}: ${e.message}`)
      return e instanceof UsageError ? 2 : 1
    }
    throw err
  } finally {
    await ctx?.close()
  }
}

/** A string flag's value; UsageError when the flag was given without one. */
export function stringFlag(flags: Flags, name: string): string | undefined {
  const v = flags[name]
  if (v === true) throw new UsageError(`--${name} needs a value`)
  return v
}

/** `value` as indented JSON (with `--json`) or as aligned `key: value` lines. */
export function formatFields(value: Readonly<Record<string, unknown>>): string {
  const keys = Object.keys(value)
  const width = Math.max(...keys.map((k) => k.length))
  const cell = (v: unknown) => (v === null || v === undefined ? '' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v))
  return keys.map((k) => `${`${k}:`.padEnd(width + 2)}${cell(value[k])}`).join('\n')
}

/** Prints `value` as JSON when `--json` was given, otherwise the human text `human()` builds. */
export function print(io: CliIO, flags: Flags, value: unknown, human: () => string): void {
  io.stdout(flags.json ? JSON.stringify(value, null, 2) : human())
}

/**
 * A flag holding JSON, parsed; UsageError naming the flag and showing `example` when it is not JSON. The
 * parser's message quotes part of the value, so for a `secret` value (headers) only the flag is named.
 *
 * @example
 * jsonFlag('rate-limit', '{"per_second": 50}', '{"per_second": 50, "burst": 10}') // { per_second: 50 }
 */
export function jsonFlag(name: string, raw: string, example: string, secret = false): unknown {
  try {
    return JSON.parse(raw)
  } catch (err) {
    throw new UsageError(`--${name} must be JSON, e.g. '${example}'${secret ? ' (the value is not shown: it may hold secrets)' : `: ${(err as Error).message}`}`)
  }
}

/**
 * The one object in `--file` (JSON or YAML) of an `add` command, with `id` filled in from the command line; a file
 * that cannot be read, holds no single object, or names another id than the command line is a UsageError.
 *
 * @example
 * const input = fileInput<ToolInput>('tools/gh.yaml', 'tool', 'gh-main')
 */
export function fileInput<T extends { id?: unknown }>(file: string, what: string, id: string | undefined): T {
  let parsed: unknown
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new UsageError(`--file ${file} could not be read as JSON or YAML: ${(err as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--file ${file} must hold one ${what} object`)
  const input = parsed as T
  if (id !== undefined && input.id !== undefined && input.id !== id) throw new UsageError(`${what} id "${id}" differs from "id" in ${file}`)
  return { ...input, id: input.id ?? id }
}
