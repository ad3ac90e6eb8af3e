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
 * (normalized by `gitlabEventName`), delivery id in `Idempotency-Key` (GitLab 17.4+; the same on a re-send), else
 * `X-Gitlab-Webhook-UUID` (16.2+), else `X-Gitlab-Event-UUID` (older; shared by the webhooks one request fires). `repository` is
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
    // X-Gitlab-Event-UUID is shared by every webhook that one request to GitLab fires (a bot's API call answering a
    // webhook fires the next with the same value), so it would answer a different event as a duplicate: the
    // webhook's own id comes first, Idempotency-Key (17.4+, kept across GitLab's re-sends), then X-Gitlab-Webhook-UUID
    const deliveryId = header(request.headers, 'idempotency-key') ?? header(request.headers, 'x-gitlab-webhook-uuid') ??
      header(request.headers, 'x-gitlab-event-uuid')
    return {
      event: gitlabEventName(requireHeader(request.headers, 'x-gitlab-event', 'GitLab')),
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      payload,
      repository: stringField(path(payload, 'project', 'path_with_namespace')) ?? '',
    }
  },
})
