/** CLI flags by name (without `--`): a string value, or `true` for a flag given without one. */
export type Flags = Readonly<Record<string, string | true>>

/**
 * Splits command-line arguments into flags and positionals. `--name=value` and `--name value` set a value;
 * a flag listed in `booleans`, or followed by another flag or nothing, is `true`. `--` ends the flags. A flag
 * given twice keeps the last value.
 *
 * @example
 * parseFlags(['run', '--config', 'hookstream.yaml', '--log-level=debug'])
 * // { flags: { config: 'hookstream.yaml', 'log-level': 'debug' }, positionals: ['run'] }
 */
export function parseFlags(argv: readonly string[], options: { booleans?: readonly string[] } = {}): { flags: Flags; positionals: string[] } {
  const booleans = new Set(options.booleans ?? [])
  const flags: Record<string, string | true> = {}
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith('--') || arg.length === 2) {
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    if (eq > 2) {
      flags[arg.slice(2, eq)] = arg.slice(eq + 1)
      continue
    }
    const name = arg.slice(2)
    const next = argv[i + 1]
    if (booleans.has(name) || next === undefined || next.startsWith('--')) {
      flags[name] = true
    } else {
      flags[name] = next
      i++
    }
  }
  return { flags, positionals }
}
