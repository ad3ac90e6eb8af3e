/**
 * CLI flags by name (without `--`): a string value, or `true` for a switch. The CLI parses them strictly from
 * each command's declared flags (src/cli/run-cli.ts); `loadConfig` reads the configuration flags from them.
 */
export type Flags = Readonly<Record<string, string | true>>
