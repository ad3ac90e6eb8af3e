import type { ToolConfig } from '../../core/tool.js'
import { activeSecrets } from '../../core/tool-secrets.js'
import type { ProviderAdapter, ProviderRequest, VerifyResult } from './provider.js'

/**
 * Checks a request's signature with the tool's current secret and, while a sender rotates, with its
 * previous secret until `previousSecretExpiresAt`: either one verifies. Never throws; a failure says
 * nothing about which secret was tried.
 *
 * @example
 * if (!verifyRotating(PROVIDER_ADAPTERS[tool.provider], { headers, rawBody }, tool).ok) return reply(401)
 */
export function verifyRotating(adapter: ProviderAdapter, request: ProviderRequest, tool: ToolConfig, nowMs = Date.now()): VerifyResult {
  const current = adapter.verify(request, tool)
  if (current.ok) return current
  for (const secret of activeSecrets(undefined, tool.previousSecret, tool.previousSecretExpiresAt, nowMs)) {
    const previous = adapter.verify(request, { ...tool, secret })
    if (previous.ok) return previous
  }
  return current
}
