import { ConfigError } from '../core/errors.js'
import { destinationsWithoutSecret, forwardSecretsSharedWithInbound } from '../core/destinations-without-secret.js'
import type { ToolConfig } from '../core/tool.js'

const HOW = 'a Standard Webhooks secret "whsec_" + base64 of 24–64 random bytes; make one with `hookstream secrets generate` ' +
  'and keep it in the environment'

/**
 * Checks that every forward destination of a config-file tool signs with a key of its own: a destination without
 * a `secret` on a tool without a `forward_secret` would be signed with the tool's inbound secret, so its receiver
 * could forge webhooks the tool accepts; and no signing secret may equal an inbound one. Tools stored through the
 * admin API or CLI always get one generated, but a file cannot show a generated secret, so the file must name it.
 * Throws a ConfigError at `key` naming the tool and destination ids (never a secret value) and the fix.
 *
 * @example
 * checkForwardSecrets('hookstream.yaml: tools[0]', tool) // throws for forward_url without forward_secret
 */
export function checkForwardSecrets(key: string, tool: ToolConfig): void {
  const bare = destinationsWithoutSecret(tool)
  if (bare.length > 0) {
    throw new ConfigError(key, `(tool "${tool.id}") forwards to destination${bare.length === 1 ? '' : 's'} ${bare.map((d) => `"${d}"`).join(', ')} ` +
      'without a signing secret of its own, so forwards would be signed with the tool\'s inbound secret and their receivers could forge ' +
      'inbound webhooks this tool accepts; set `forward_secret: ${FORWARD_SECRET_VAR}` on the tool, or `secret: ${VAR}` on each of those ' +
      `destinations: ${HOW}`)
  }
  const shared = forwardSecretsSharedWithInbound(tool)
  if (shared.length > 0) {
    throw new ConfigError(key, `(tool "${tool.id}") signs forwards with its inbound secret: ${shared.join(', ')} equals the tool's inbound secret, ` +
      `so receivers could forge inbound webhooks this tool accepts; give forwards a different secret: ${HOW}`)
  }
}
