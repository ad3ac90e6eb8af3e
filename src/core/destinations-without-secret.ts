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
