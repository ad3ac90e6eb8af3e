import { PipelineError } from './errors.js'
import { destinationsOf, type ToolConfig } from './tool.js'

/**
 * The ids of the tool's forward destinations (forward_url's `default` included) that have no signing secret of
 * their own and the tool no `forward_secret` either: they would be signed with the tool's inbound secret (or not
 * at all when it has none). Empty when every destination has a key of its own.
 *
 * @example
 * destinationsWithoutSecret(parseTool({ id: 'gh', provider: 'github', secret: 's', processing_mode: 'store_and_forward', forward_url: 'https://x.example/in' })) // ['default']
 */
export function destinationsWithoutSecret(tool: ToolConfig): string[] {
  if (tool.forwardSecret) return []
  return destinationsOf(tool).filter((d) => !d.secret).map((d) => d.id)
}

/**
 * The forward signing secrets of the tool that equal its inbound secret (current or previous), by name
 * (`forward_secret`, `previous_forward_secret`, `destination "ci" secret`): their receivers would hold the key
 * inbound webhooks are checked with, and could forge them. Empty when none does.
 *
 * @example
 * forwardSecretsSharedWithInbound(tool) // ['forward_secret']
 */
export function forwardSecretsSharedWithInbound(tool: ToolConfig): string[] {
  const inbound = new Set([tool.secret, tool.previousSecret].filter((s): s is string => Boolean(s)))
  return [
    ...(tool.forwardSecret && inbound.has(tool.forwardSecret) ? ['forward_secret'] : []),
    ...(tool.previousForwardSecret && inbound.has(tool.previousForwardSecret) ? ['previous_forward_secret'] : []),
    ...(tool.destinations ?? []).filter((d) => (d.secret && inbound.has(d.secret)) || (d.previousSecret && inbound.has(d.previousSecret)))
      .map((d) => `destination "${d.id}" secret`),
  ]
}

/**
 * Throws a permanent PipelineError `TOOL_INVALID` when a forward signing secret of the tool equals its inbound
 * secret (see `forwardSecretsSharedWithInbound`); the message names the fields, never the secret.
 *
 * @example
 * refuseForwardSecretsSharedWithInbound(tool) // before storing a tool changed through the admin API or CLI
 */
export function refuseForwardSecretsSharedWithInbound(tool: ToolConfig): void {
  const shared = forwardSecretsSharedWithInbound(tool)
  if (shared.length === 0) return
  throw new PipelineError('permanent', 'TOOL_INVALID', `tool "${tool.id}" would sign forwards with its inbound secret: ${shared.join(', ')} ` +
    'equals the tool\'s inbound secret, so receivers could forge inbound webhooks this tool accepts; give forwards a different secret ' +
    '(leave it out to have one generated, or make one with `hookstream secrets generate`)')
}
