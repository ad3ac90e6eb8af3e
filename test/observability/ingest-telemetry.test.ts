import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace'
import { sharedRedis } from '../helpers/servers.js'
import { startIngest, type IngestHarness } from '../http/providers/ingest-harness.js'
import { SpanAttributes } from '../../src/observability/attributes.js'
import { createLogger } from '../../src/observability/logger.js'
import { createMetrics, type Metrics } from '../../src/observability/metrics.js'
import { startTracing } from '../../src/observability/start-tracing.js'
import { parseExposition } from './exposition.js'

const Ingest = suite('ingest telemetry')

// ESM-only package: uvu loads test files through require, so it is imported dynamically
const sign = async (secret: string, body: string) => (await import('@octokit/webhooks-methods')).sign(secret, body)
const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

async function push(h: IngestHarness, toolId: string, secret: string, extra: Record<string, string> = {}) {
  return h.post(toolId, body, { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
    'x-hub-signature-256': await sign(secret, body), ...extra })
}

async function withIngest(options: Parameters<typeof startIngest>[1], fn: (h: IngestHarness) => Promise<void>) {
  const h = await startIngest((await sharedRedis()).url, options)
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret' })
    await fn(h)
  } finally {
    await h.close()
  }
}

Ingest('answers are counted by tool and status code; unknown tools as "unknown"; bad signatures separately', async () => {
  const metrics: Metrics = createMetrics({ defaultMetrics: false })
  try {
    await withIngest({ metrics }, async (h) => {
      assert.is((await push(h, 'gh', 'gh-secret')).status, 202)
      assert.is((await push(h, 'gh', 'gh-secret')).status, 202)
      assert.is((await push(h, 'gh', 'wrong-secret')).status, 401)
      assert.is((await push(h, `made-up-${randomUUID()}`, 'x')).status, 404)
    })
    const s = parseExposition(await metrics.metricsText())
    assert.is(s.get('webhook_ingest_requests_total{tool_id="gh",code="202"}'), 2)
    assert.is(s.get('webhook_ingest_requests_total{tool_id="gh",code="401"}'), 1)
    assert.is(s.get('webhook_ingest_requests_total{tool_id="unknown",code="404"}'), 1)
    assert.is(s.get('webhook_signature_failures_total{tool_id="gh"}'), 1)
    assert.is([...s.keys()].filter((k) => k.startsWith('webhook_ingest_requests_total')).length, 3)
    assert.is([...s.keys()].filter((k) => k.startsWith('webhook_events_received_total')).length, 0, 'received is the worker\'s')
  } finally {
    metrics.close()
  }
})

Ingest('tracing off: the request traceparent is stored as it came', async () => {
  await withIngest({}, async (h) => {
    assert.is((await push(h, 'gh', 'gh-secret', { traceparent: incoming })).status, 202)
    assert.is((await h.entries()).at(-1)!.fields.traceparent, incoming)
  })
})

Ingest('tracing on: a SERVER span, child of the request traceparent, whose own traceparent is stored', async () => {
  const exporter = new InMemorySpanExporter()
  const tracing = startTracing({ serviceName: 'hookstream-test', exporter })
  try {
    await withIngest({ tracing: true }, async (h) => {
      const res = await push(h, 'gh', 'gh-secret', { traceparent: incoming })
      assert.is(res.status, 202)
      assert.is((await push(h, 'gh', 'bad')).status, 401)
      const [ok, denied] = exporter.getFinishedSpans()
      assert.is(ok!.name, 'webhook.ingest')
      assert.is(ok!.kind, SpanKind.SERVER)
      assert.is(ok!.spanContext().traceId, incoming.slice(3, 35))
      assert.is(ok!.parentSpanContext?.spanId, incoming.slice(36, 52))
      assert.is(ok!.attributes[SpanAttributes.EVENT_ID], res.json.id)
      assert.is(ok!.attributes[SpanAttributes.TOOL_ID], 'gh')
      assert.is((await h.entries()).at(-1)!.fields.traceparent, `00-${ok!.spanContext().traceId}-${ok!.spanContext().spanId}-01`)
      // a 4xx is the sender's error: recorded as error.type, status stays UNSET
      assert.is(denied!.attributes[SpanAttributes.HTTP_RESPONSE_STATUS_CODE], 401)
      assert.is(denied!.attributes[SpanAttributes.ERROR_TYPE], 'SIGNATURE_INVALID')
      assert.is(denied!.status.code, SpanStatusCode.UNSET)
      assert.is(denied!.parentSpanContext, undefined)
    })
  } finally {
    await tracing.shutdown()
  }
})

Ingest('logs: accepted requests are silent at info; a 503 is a warning with event and trace ids', async () => {
  const lines: string[] = []
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done() } })
  const logger = createLogger({ level: 'info', destination })
  await withIngest({ logger }, async (h) => {
    assert.is((await push(h, 'gh', 'gh-secret')).status, 202)
    assert.is((await push(h, 'gh', 'wrong')).status, 401)
    assert.is(lines.length, 0)
    h.redis.disconnect()
    const res = await push(h, 'gh', 'gh-secret', { traceparent: incoming })
    assert.is(res.status, 503)
  })
  assert.is(lines.length, 1)
  const line = JSON.parse(lines[0] as string)
  assert.is(line.level, 40)
  assert.is(line.code, 'REDIS_UNAVAILABLE')
  assert.is(line.trace_id, incoming.slice(3, 35))
  assert.match(line.event_id, /^[0-9a-f-]{36}$/)
  assert.not.ok(lines[0]!.includes('gh-secret'))
})

Ingest.run()
