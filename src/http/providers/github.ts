import type { ProviderAdapter } from './provider.js'
import { header, path, requireHeader, stringField, verifyPrefixedHex } from './provider.js'

/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, event in `X-GitHub-Event`,
 * delivery id in `X-GitHub-Delivery`. Bodies are `application/json` or `application/x-www-form-urlencoded`
 * (JSON in the `payload` field; the signature covers the raw form body). `repository` is
 * `payload.repository.full_name`, or `""` for events without a repository (e.g. `installation`).
 *
 * @example
 * github.verify({ headers: req.headers, rawBody }, tool) // { ok: true, verified: true }
 */
export const github: ProviderAdapter = Object.freeze<ProviderAdapter>({
  provider: 'github',
  contentTypes: ['application/json', 'application/x-www-form-urlencoded'],
  secretHeaders: () => [],
  verify: (request, tool) => verifyPrefixedHex(header(request.headers, 'x-hub-signature-256'), tool.secret, request.rawBody),
  normalize(request, payload) {
    const deliveryId = header(request.headers, 'x-github-delivery')
    return {
      event: requireHeader(request.headers, 'x-github-event', 'GitHub'),
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      payload,
      repository: stringField(path(payload, 'repository', 'full_name')) ?? '',
    }
  },
})
