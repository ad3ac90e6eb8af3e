import { PipelineError } from '../../core/errors.js'
import type { ProviderAdapter } from './provider.js'
import { header, path, stringField, verifyPrefixedHex } from './provider.js'

/**
 * Jira: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`, event in the payload's `webhookEvent`
 * (e.g. `jira:issue_created`), delivery id in `X-Atlassian-Webhook-Identifier`. Jira has no repository; the
 * field holds the project key (`payload.issue.fields.project.key`) when there is one, else `""`, so
 * per-key ordering follows the project.
 *
 * @example
 * jira.normalize(request, { webhookEvent: 'jira:issue_created', issue: … }).event // "jira:issue_created"
 */
export const jira: ProviderAdapter = Object.freeze<ProviderAdapter>({
  provider: 'jira',
  contentTypes: ['application/json'],
  secretHeaders: () => [],
  verify: (request, tool) => verifyPrefixedHex(header(request.headers, 'x-hub-signature'), tool.secret, request.rawBody),
  normalize(request, payload) {
    const event = stringField(path(payload, 'webhookEvent'))
    if (event === undefined) {
      throw new PipelineError('permanent', 'INVALID_PAYLOAD',
        'Jira webhook body must have a string field "webhookEvent" (e.g. "jira:issue_created"); check that the sender is Jira')
    }
    const deliveryId = header(request.headers, 'x-atlassian-webhook-identifier')
    return {
      event,
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      payload,
      repository: stringField(path(payload, 'issue', 'fields', 'project', 'key')) ?? '',
    }
  },
})
