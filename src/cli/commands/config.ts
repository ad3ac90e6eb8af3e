import { describeConfig, describeConfigRows } from '../../config/describe-config.js'
import { loadConfig } from '../../config/load-config.js'
import { JSON_FLAG, type Command, type CommandSpec } from '../command.js'

const USAGE = 'usage: hookstream config check [--config hookstream.yaml] [--json]'

/**
 * `hookstream config check`: reads the configuration as `run` would (flags > environment > file, `${VAR}`
 * interpolation, every value validated), prints the effective settings with secrets masked and exits 0; a bad
 * setting is printed naming the flag, variable or file key and the fix, and exits 1. Connects to nothing.
 *
 * @example
 * HOOKSTREAM_CONFIG=/etc/hookstream/hookstream.yaml hookstream config check --json
 */
export const configCommand: Command = async (args, flags, io) => {
  if (args[0] !== 'check' || args.length > 1) {
    io.stderr(`hookstream config: ${args[0] ? `unknown subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  let config
  try {
    config = loadConfig({ env: io.env, flags })
  } catch (err) {
    if ((err as Error)?.name !== 'ConfigError') throw err
    io.stderr(`hookstream config: ${(err as Error).message}`)
    if (flags.json) io.stdout(JSON.stringify({ valid: false, error: (err as Error).message }, null, 2))
    return 1
  }
  io.stdout(flags.json
    ? JSON.stringify({ valid: true, settings: Object.fromEntries(describeConfigRows(config)) }, null, 2)
    : `${describeConfig(config)}\n\nconfiguration is valid`)
  return 0
}

/** `hookstream config` as registered in the CLI. */
export const configSpec: CommandSpec = {
  summary: 'config check: validate the configuration and print the effective settings (secrets masked)',
  usage: USAGE,
  flags: JSON_FLAG,
  run: configCommand,
}
