import { generateForwardSecret } from '../../core/tool-secrets.js'
import { JSON_FLAG, type Command, type CommandSpec } from '../command.js'

const USAGE = 'usage: hookstream secrets generate [--json]   print one fresh Standard Webhooks signing secret (whsec_…)'

/**
 * `hookstream secrets generate`: prints one fresh forward signing secret, `whsec_` + base64 of 32 random bytes,
 * and nothing else (`--json`: `{ "secret": "whsec_…" }`), for a config file's `forward_secret` or destination
 * `secret` (keep it in the environment and write `${VAR}` in the file). Connects to nothing.
 *
 * @example
 * BILLING_FORWARD_SECRET=$(hookstream secrets generate)
 */
export const secretsCommand: Command = async (args, flags, io) => {
  if (args[0] !== 'generate' || args.length > 1) {
    io.stderr(`hookstream secrets: ${args[0] ? `unknown subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  const secret = generateForwardSecret()
  io.stdout(flags.json ? JSON.stringify({ secret }) : secret)
  return 0
}

/** `hookstream secrets` as registered in the CLI. */
export const secretsSpec: CommandSpec = {
  summary: 'secrets generate: print a fresh whsec_ signing secret for a config file\'s forward_secret or destination secret',
  usage: USAGE,
  flags: JSON_FLAG,
  run: secretsCommand,
}
