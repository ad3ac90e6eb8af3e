import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { acceptsEventType, destinationToInput, destinationToJSON, parseDestination, parseDestinations } from '../../src/core/destination.js'
import { destinationsOf, parseTool } from '../../src/core/tool.js'

const Destination = suite('destination')

function refused(input: unknown, pattern: RegExp, field?: string): void {
  try {
    parseDestinations('tool "t"', input)
    assert.unreachable('should have been refused')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'DESTINATION_INVALID')
    assert.match((err as Error).message, pattern)
    if (field) assert.ok((err as Error).message.includes(`"${field}"`), (err as Error).message)
  }
}

Destination('a full destination parses into its typed shape with durations and the rate limit', () => {
  const d = parseDestination({
    id: 'billing', url: 'https://billing.example.test/hooks', event_types: ['webhook.github.push', 'webhook.github.pull_request*'],
    filter: 'action = "opened"', transform: '{ "n": number }', headers: { Authorization: 'Bearer t0k' }, timeout: '2s',
    retry_policy: { max_retries: 2, initial_interval: '50ms' }, rate_limit: { per_second: 50 }, max_concurrency: 4,
    secret: 'whsec_' + Buffer.alloc(24, 1).toString('base64'),
  })
  assert.is(d.timeoutMs, 2000)
  assert.is(d.retryPolicy?.maxRetries, 2)
  assert.is(d.retryPolicy?.initialIntervalMs, 50)
  assert.equal(d.rateLimit, { perSecond: 50, burst: 50 })
  assert.is(d.maxConcurrency, 4)
  assert.equal(d.headers, { authorization: 'Bearer t0k' })
  assert.equal(parseDestination(destinationToInput(d)), d)
})

Destination('the shown form masks secrets, header values and URL credentials', () => {
  const d = parseDestination({ id: 'ci', url: 'https://bot:pw@ci.example.test/in?token=abc', headers: { 'x-key': 'k3y' }, secret: 'plain-secret' })
  const text = JSON.stringify(destinationToJSON(d))
  for (const secret of ['pw', 'abc', 'k3y', 'plain-secret']) assert.not.ok(text.includes(`${secret}"`) || text.includes(`${secret}@`) || text.includes(`=${secret}`), text)
  assert.is(destinationToJSON(d).secret, '********')
  assert.equal(destinationToJSON(d).headers, { 'x-key': '********' })
})

Destination('every field is checked and the message names it', () => {
  refused([{ id: 'Bad Id', url: 'https://a.test' }], /lowercase/, 'id')
  refused([{ id: 'a', url: 'ftp://a.test' }], /http\(s\) URL/, 'url')
  refused([{ id: 'a', url: 'https://a.test', filter: 'action = ' }], /does not compile as JSONata/, 'filter')
  refused([{ id: 'a', url: 'https://a.test', transform: '{ "a": }' }], /does not compile as JSONata/, 'transform')
  refused([{ id: 'a', url: 'https://a.test', event_types: ['ok', 'bad type!'] }], /event type or a glob/, 'event_types[1]')
  refused([{ id: 'a', url: 'https://a.test', timeout: '5m' }], /between/, 'timeout')
  refused([{ id: 'a', url: 'https://a.test', retry_policy: { max_retries: -1 } }], /at least 0/, 'retry_policy.max_retries')
  refused([{ id: 'a', url: 'https://a.test', rate_limit: { per_second: 0 } }], /above 0/, 'rate_limit.per_second')
  refused([{ id: 'a', url: 'https://a.test', rate_limit: { per_second: 5, burst: 1.5 } }], /integer/, 'rate_limit.burst')
  refused([{ id: 'a', url: 'https://a.test', max_concurrency: 0 }], /from 1 to 1000/, 'max_concurrency')
  refused([{ id: 'a', url: 'https://a.test', headers: { host: 'x' } }], /set by hookstream/, 'headers.host')
  refused([{ id: 'a', url: 'https://a.test', secret: 'whsec_c2hvcnQ=' }], /16 bytes/, 'secret')
  refused([{ id: 'a', url: 'https://a.test', secret: '********' }], /mask/, 'secret')
  refused([{ id: 'a', url: 'https://a.test', colour: 'red' }], /not a destination field/, 'colour')
  refused([{ id: 'a', url: 'https://a.test' }, { id: 'a', url: 'https://b.test' }], /unique/, 'destinations[1].id')
  refused([{ id: 'default', url: 'https://a.test' }], /forward_url shorthand/, 'destinations[0].id')
  refused(Array.from({ length: 21 }, (_, i) => ({ id: `d${i}`, url: 'https://a.test' })), /at most 20/, 'destinations')
})

Destination('event types match exactly or by glob, and an empty list takes every type', () => {
  const d = { eventTypes: ['webhook.github.push', 'webhook.github.pull_request*', '*.gitlab.*'] }
  assert.ok(acceptsEventType(d, 'webhook.github.push'))
  assert.not.ok(acceptsEventType(d, 'webhook.github.push2'))
  assert.ok(acceptsEventType(d, 'webhook.github.pull_request'))
  assert.ok(acceptsEventType(d, 'webhook.github.pull_request_review'))
  assert.ok(acceptsEventType(d, 'webhook.gitlab.merge_request'))
  assert.not.ok(acceptsEventType(d, 'webhook.jira.issue'))
  assert.ok(acceptsEventType({ eventTypes: [] }, 'anything'))
})

Destination('a glob of many stars answers a near-miss event type at once, without backtracking', () => {
  // as a RegExp of ".*" parts this pattern took seconds per event on the worker's main thread, stalling every tool
  const d = { eventTypes: [`${'*a'.repeat(20)}*b`] }
  const started = performance.now()
  assert.not.ok(acceptsEventType(d, `webhook.github.${'a'.repeat(31)}`))
  assert.ok(performance.now() - started < 100, `took ${Math.round(performance.now() - started)} ms`)
  assert.ok(acceptsEventType(d, `webhook.github.${'a'.repeat(31)}b`))
  assert.ok(acceptsEventType({ eventTypes: ['*push'] }, 'webhook.github.push'))
  assert.not.ok(acceptsEventType({ eventTypes: ['push*push'] }, 'push'))
  assert.ok(acceptsEventType({ eventTypes: ['push*push'] }, 'pushpush'))
  assert.ok(acceptsEventType({ eventTypes: ['a**b'] }, 'ab'))
  assert.ok(acceptsEventType({ eventTypes: ['*'] }, ''))
})

Destination('a previous secret expiry given as a number past the last date is refused, not kept to break every listing later', () => {
  // 1e20 ms is finite but no Date: toolToJSON and destinationToJSON threw on it, so GET /admin/tools failed for all
  refused([{ id: 'a', url: 'https://a.test', secret: 'whsec_bmV4dC1zZWNyZXQtb2YtMTYtYnl0ZXM=', previous_secret: 'old-secret', previous_secret_expires_at: 1e20 }],
    /ISO 8601 time/, 'previous_secret_expires_at')
  try {
    parseTool({ id: 'gh', provider: 'github', secret: 's', previous_secret: 'old', previous_secret_expires_at: 1e20 })
    assert.unreachable('should have been refused')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'TOOL_INVALID')
    assert.match((err as Error).message, /field "previous_secret_expires_at" must be an ISO 8601 time/)
  }
  assert.is(parseTool({ id: 'gh', provider: 'github', secret: 's', previous_secret: 'old', previous_secret_expires_at: 8.64e15 }).previousSecretExpiresAt, 8.64e15)
})

Destination('a tool lists forward_url as destination "default" before its own destinations', () => {
  const tool = parseTool({ id: 'gh', provider: 'github', secret: 's', processing_mode: 'store_and_forward', forward_url: 'https://r.test/in',
    destinations: [{ id: 'ci', url: 'https://ci.test/in' }] })
  assert.equal(destinationsOf(tool).map((d) => d.id), ['default', 'ci'])
  assert.is(destinationsOf(tool)[0]?.url, 'https://r.test/in')
  const store = parseTool({ id: 'gh', provider: 'github', secret: 's', destinations: [{ id: 'ci', url: 'https://ci.test/in' }] })
  assert.equal(destinationsOf(store).map((d) => d.id), ['ci'])
})

Destination.run()
