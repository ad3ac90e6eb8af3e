import { parseArgs } from 'node:util'
import { isPipelineError } from '../core/errors.js'
import type { Flags } from '../config/parse-flags.js'
import { hookstreamVersion } from '../observability/build-info.js'
import { COMMON_FLAGS, type CliIO, type CommandSpec, type FlagSpecs } from './command.js'

/** Exit codes of every command: 0 success, 1 failure (the work could not be done), 2 usage error (nothing was done). */
export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2 })

function flagList(flags: FlagSpecs): string {
  const rows = Object.entries(flags).map(([name, f]) => [`--${name}${f.type === 'string' ? ' <value>' : ''}`, f.description] as const)
  const width = Math.max(...rows.map(([n]) => n.length))
  return rows.map(([n, d]) => `  ${n.padEnd(width)}  ${d}`).join('\n')
}

/** `hookstream --help`: every command with its summary. */
export function globalUsage(commands: Readonly<Record<string, CommandSpec>>): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length))
  return [
    'usage: hookstream <command> [flags]     hookstream <command> --help     hookstream --version',
    '', 'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '', 'flags of every command:', flagList(COMMON_FLAGS),
    '', 'exit codes: 0 success, 1 failure, 2 usage error (nothing was done)',
    'configuration: see README.md ("Configuration"); check it with `hookstream config check`',
  ].join('\n')
}

/** `hookstream <name> --help`: the command's usage and every flag it accepts. */
export function commandUsage(name: string, spec: CommandSpec): string {
  const own = Object.keys(spec.flags).length > 0 ? ['', `flags of ${name}:`, flagList(spec.flags)] : []
  return [spec.usage, '', spec.summary, ...own, '', 'flags of every command:', flagList(COMMON_FLAGS)].join('\n')
}

/** Levenshtein distance, for "did you mean" on a misspelled flag. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length] as number
}

/** The usage-error message for what `parseArgs` refused, naming the flag and the nearest accepted one. */
function flagError(name: string, err: Error & { code?: string }, accepted: FlagSpecs): string {
  const flag = /'(--?[^' ]+)/.exec(err.message)?.[1]
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) {
    const bare = flag.replace(/^-+/, '')
    const near = Object.keys(accepted).map((k) => [k, distance(bare, k)] as const).sort((a, b) => a[1] - b[1])[0]
    const hint = near && near[1] <= Math.max(1, Math.floor(bare.length / 3)) ? ` (did you mean --${near[0]}?)` : ''
    return `unknown flag ${flag}${hint}; nothing was done. Flags of ${name}: ${Object.keys(accepted).map((k) => `--${k}`).join(' ')} ` +
      `(see \`hookstream ${name} --help\`)`
  }
  // a value missing, a value given to a switch, or a value that looks like a flag
  return `${err.message.replace(/\. To specify a positional argument.*$/s, '')}; nothing was done (see \`hookstream ${name} --help\`)`
}

/** `args` with the command name moved to the front, so `--config x.yaml run` works like `run --config x.yaml`. */
function commandFirst(args: readonly string[]): readonly string[] {
  if (args.length === 0 || !(args[0] as string).startsWith('-')) return args
  const { tokens } = parseArgs({
    args: [...args], strict: false, allowPositionals: true, tokens: true,
    options: Object.fromEntries(Object.entries(COMMON_FLAGS).map(([k, f]) => [k, { type: f.type }])),
  })
  const at = tokens.find((t) => t.kind === 'positional')?.index
  // an unknown flag before the command may have swallowed a value: leave it first, to be refused by name
  const unknown = tokens.some((t) => t.kind === 'option' && t.index < (at ?? Infinity) && !Object.hasOwn(COMMON_FLAGS, t.name))
  return at === undefined || unknown ? args : [args[at] as string, ...args.slice(0, at), ...args.slice(at + 1)]
}

/**
 * Runs `hookstream <argv>`: finds the command, parses its flags strictly (an unknown or misspelled flag, a
 * missing value or a value given to a switch is a usage error naming it: exit 2, nothing runs), answers
 * `--help`, `help <command>` and `--version`, and runs the command. A ConfigError or PipelineError the command
 * throws is printed as `hookstream <command>: <message>` (exit 1); anything else is a bug and prints its stack.
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2), processIO, COMMANDS)   // also `--config x.yaml run`
 */
export async function runCli(args: readonly string[], io: CliIO, commands: Readonly<Record<string, CommandSpec>>): Promise<number> {
  const argv = commandFirst(args)
  const first = argv[0]
  if (first === '--version' || first === '-v') {
    io.stdout(`hookstream ${hookstreamVersion()} (node ${process.versions.node})`)
    return EXIT.ok
  }
  if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && argv.length === 1)) {
    ;(first === undefined ? io.stderr : io.stdout)(globalUsage(commands))
    return first === undefined ? EXIT.usage : EXIT.ok
  }
  if (first.startsWith('-')) {
    io.stderr(`hookstream: unknown flag ${first.split('=')[0]} before the command; nothing was done. Flags before the command: ` +
      `${Object.keys(COMMON_FLAGS).map((k) => `--${k}`).join(' ')} (see \`hookstream --help\`)`)
    return EXIT.usage
  }
  const helpOf = first === 'help' ? argv[1] : undefined
  const name = helpOf ?? first
  const spec = Object.hasOwn(commands, name) ? commands[name] : undefined
  if (!spec) {
    io.stderr(`hookstream: unknown command "${name}"; nothing was done\n\n${globalUsage(commands)}`)
    return EXIT.usage
  }
  if (helpOf !== undefined) {
    io.stdout(commandUsage(name, spec))
    return EXIT.ok
  }
  const accepted: FlagSpecs = { ...COMMON_FLAGS, ...spec.flags }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] }
  try {
    parsed = parseArgs({
      args: argv.slice(1), strict: true, allowPositionals: true,
      options: Object.fromEntries(Object.entries(accepted).map(([k, f]) => [k, { type: f.type, ...(k === 'help' ? { short: 'h' } : {}) }])),
    }) as typeof parsed
  } catch (err) {
    io.stderr(`hookstream ${name}: ${flagError(name, err as Error & { code?: string }, accepted)}`)
    return EXIT.usage
  }
  if (parsed.values.help) {
    io.stdout(commandUsage(name, spec))
    return EXIT.ok
  }
  const flags: Flags = Object.fromEntries(Object.entries(parsed.values).filter(([, v]) => v !== undefined && v !== false)
    .map(([k, v]) => [k, v === true ? true : String(v)]))
  try {
    return await spec.run(parsed.positionals, flags, io)
  } catch (err) {
    const e = err as Error
    if (e?.name === 'UsageError') {
      io.stderr(`hookstream ${name}: ${e.message}`)
      return EXIT.usage
    }
    // configuration and pipeline errors carry a message written for the user; anything else is a bug
    const known = e?.name === 'ConfigError' || isPipelineError(err)
    io.stderr(`hookstream ${name}: ${known ? e.message : e?.stack ?? String(err)}`)
    return EXIT.failure
  }
}
