import type { ProviderAdapter } from './provider.js'
import { header, path, requireHeader, safeEqual, stringField } from './provider.js'

/**
 * Turns GitLab's `X-Gitlab-Event` header into an event name: lowercase, each run of other characters than
 * letters and digits becomes one `_` ("Push Hook" → `push_hook`, "Merge Request Hook" → `merge_request_hook`).
 *
 * @example
 * gitlabEventName('Pipeline Hook') // "pipeline_hook"
 */
export function gitlabEventName(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '')
}

/**
 * GitLab: `X-Gitlab-Token` must equal the tool's secret (compared in constant time), event in `X-Gitlab-Event`
 * (normalized by `gitlabEventName`), delivery id in `X-Gitlab-Event-UUID`. `repository` is
 * `payload.project.path_with_namespace`, or `""` when absent.
 *
 * @example
 * gitlab.normalize(request, payload).event // "push_hook"
 */
export const gitlab: ProviderAdapter = Object.freeze<ProviderAdapter>({
  provider: 'gitlab',
  contentTypes: ['application/json'],
  secretHeaders: () => ['x-gitlab-token'],
  verify(request, tool) {
    const token = header(request.headers, 'x-gitlab-token')
    if (token === undefined || tool.secret === '') return { ok: false }
    return safeEqual(token, tool.secret) ? { ok: true, verified: true } : { ok: false }
  },
  normalize(request, payload) {
    const deliveryId = header(request.headers, 'x-gitlab-event-uuid')
    return {
      event: gitlabEventName(requireHeader(request.headers, 'x-gitlab-event', 'GitLab')),
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      payload,
      repository: stringField(path(payload, 'project', 'path_with_namespace')) ?? '',
    }
  },
})
