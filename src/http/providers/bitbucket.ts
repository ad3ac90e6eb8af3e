import type { ProviderAdapter } from './provider.js'
import { header, path, requireHeader, stringField, verifyPrefixedHex } from './provider.js'

/**
 * Bitbucket Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`, event in `X-Event-Key`
 * (e.g. `repo:push`), delivery id in `X-Request-UUID`. `repository` is `payload.repository.full_name`.
 *
 * @example
 * bitbucket.normalize(request, payload).event // "repo:push"
 */
export const bitbucket: ProviderAdapter = Object.freeze<ProviderAdapter>({
  provider: 'bitbucket',
  contentTypes: ['application/json'],
  secretHeaders: () => [],
  verify: (request, tool) => verifyPrefixedHex(header(request.headers, 'x-hub-signature'), tool.secret, request.rawBody),
  normalize(request, payload) {
    const deliveryId = header(request.headers, 'x-request-uuid')
    return {
      event: requireHeader(request.headers, 'x-event-key', 'Bitbucket'),
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      payload,
      repository: stringField(path(payload, 'repository', 'full_name')) ?? '',
    }
  },
})
