import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, startReceiver, type PipelineWorld, type Receiver } from '../helpers/pipeline.js'
import { startIngest, type IngestHarness } from '../http/providers/ingest-harness.js'
import { SpanAttributes } from '../../src/observability/attributes.js'
import { startTracing, type Tracing } from '../../src/observability/start-tracing.js'
import { Writable } from 'node:stream'
import { toEnvelope, type StreamMessage } from '../../src/core/envelope.js'
import { createLogger } from '../../src/observability/logger.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { pipelineTelemetry } from '../../src/observability/pipeline-telemetry.js'
import { makeEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; h: IngestHarness; exporter: InMemorySpanExporter; tracing: Tracing; receivers: Receiver[] }
const Traces = suite<Ctx>('pipeline telemetry: traces from ingest to settle', {} as Ctx)

Traces.before.each(async (ctx) => {
  ctx.exporter = new InMemorySpanExporter()
  ctx.tracing = startTracing({ serviceName: 'hookstream-test', exporter: ctx.exporter })
  const redisUrl = (await sharedRedis()).url
  ctx.w = await pipelineWorld(redisUrl, await (await sharedPostgres()).createDatabase())
  ctx.h = await startIngest(redisUrl, {
    tools: { get: async (id) => ctx.w.tools.get(id) }, keys: ctx.w.keys, stream: ctx.w.stream, tracing: true,
  })
  ctx.receivers = []
})
// tracing is global state: it is shut down first, so a failing close below cannot leave it registered (every
// later startTracing would be refused)
Traces.after.each((ctx) => release(ctx, {
  tracing: (t) => t.shutdown(), h: (h) => h.close(), w: (w) => w.close(), receivers: (rs) => Promise.all(rs.map((r) => r.close())),
}))

// ESM-only package: uvu loads test files through require, so it is imported dynamically
const sign = async (secret: string, body: string) => (await import('@octokit/webhooks-methods')).sign(secret, body)

async function postPush(h: IngestHarness, toolId: string, secret: string): Promise<string> {
  const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'octo/repo' } })
  const id = randomUUID()
  const res = await h.post(toolId, body, { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': id,
    'x-hub-signature-256': await sign(secret, body) })
  assert.is(res.status, 202)
  return id
}

function byName(spans: ReadableSpan[], traceId: string): Map<string, ReadableSpan[]> {
  const out = new Map<string, ReadableSpan[]>()
  for (const s of spans.filter((x) => x.spanContext().traceId === traceId)) out.set(s.name, [...(out.get(s.name) ?? []), s])
  return out
}

const only = (m: Map<string, ReadableSpan[]>, name: string): ReadableSpan => {
  const list = m.get(name) ?? []
  assert.is(list.length, 1, `one ${name} span; got ${list.length}`)
  return list[0] as ReadableSpan
}
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId

Traces('one trace per webhook: ingest → process → store, forward (its traceparent reaches the receiver), dlq', async (ctx) => {
  const { w, h, exporter } = ctx
  const receiver = await startReceiver()
  const rejecting = await startReceiver(() => 400)
  ctx.receivers.push(receiver, rejecting)
  w.addTool({ id: 'gh', provider: 'github', secret: 'gh-secret', processing_mode: 'store' })
  w.addTool({ id: 'gh-fwd', provider: 'github', secret: 'fwd-secret', processing_mode: 'store_and_forward', forward_url: receiver.url })
  w.addTool({ id: 'gh-bad', provider: 'github', secret: 'bad-secret', processing_mode: 'store_and_forward', forward_url: rejecting.url })
  const storedId = await postPush(h, 'gh', 'gh-secret')
  const forwardedId = await postPush(h, 'gh-fwd', 'fwd-secret')
  const failedId = await postPush(h, 'gh-bad', 'bad-secret')
  w.start({ telemetry: { tracing: true } })
  await eventually('3 settled', () => w.settled.length === 3)
  await eventually('3 process spans exported', () => exporter.getFinishedSpans().filter((s) => s.name === 'webhook.process').length === 3)
  const spans = exporter.getFinishedSpans()
  const ingests = spans.filter((s) => s.name === 'webhook.ingest')
  assert.is(ingests.length, 3)
  const traceOf = (eventId: string) => {
    const ingest = ingests.find((s) => s.attributes[SpanAttributes.EVENT_ID] === eventId)
    assert.ok(ingest, `ingest span of ${eventId}`)
    return ingest!.spanContext().traceId
  }

  // stored: ingest (root, SERVER) → process (CONSUMER) → store (CLIENT)
  const stored = byName(spans, traceOf(storedId))
  const ingest = only(stored, 'webhook.ingest')
  const processing = only(stored, 'webhook.process')
  const store = only(stored, 'webhook.store')
  assert.is(parentOf(ingest), undefined)
  assert.is(ingest.kind, SpanKind.SERVER)
  assert.is(ingest.attributes[SpanAttributes.HTTP_RESPONSE_STATUS_CODE], 202)
  assert.is(parentOf(processing), ingest.spanContext().spanId)
  assert.is(processing.kind, SpanKind.CONSUMER)
  assert.is(parentOf(store), processing.spanContext().spanId)
  assert.is(store.kind, SpanKind.CLIENT)
  assert.equal([processing.attributes[SpanAttributes.EVENT_ID], processing.attributes[SpanAttributes.EVENT_TYPE],
    processing.attributes[SpanAttributes.TOOL_ID], processing.attributes[SpanAttributes.EVENT_RETRY_COUNT],
    processing.attributes[SpanAttributes.MESSAGING_SYSTEM], processing.attributes[SpanAttributes.MESSAGING_DESTINATION_NAME],
    processing.attributes[SpanAttributes.EVENT_OUTCOME]], [storedId, 'webhook.github.push', 'gh', 0, 'redis', w.keys.stream, 'stored'])
  assert.match(String(processing.attributes[SpanAttributes.MESSAGING_MESSAGE_ID]), /^\d+-\d+$/)
  assert.is(stored.size, 3, 'no other spans in the trace')

  // forwarded: process → store and process → forward; the receiver got the forward span's traceparent
  const fwd = byName(spans, traceOf(forwardedId))
  const fwdProcess = only(fwd, 'webhook.process')
  const forward = only(fwd, 'webhook.forward')
  assert.is(parentOf(only(fwd, 'webhook.store')), fwdProcess.spanContext().spanId)
  assert.is(parentOf(fwdProcess), only(fwd, 'webhook.ingest').spanContext().spanId)
  assert.is(parentOf(forward), fwdProcess.spanContext().spanId)
  assert.is(forward.kind, SpanKind.CLIENT)
  assert.is(fwdProcess.attributes[SpanAttributes.EVENT_OUTCOME], 'forwarded')
  assert.is(receiver.requests.length, 1)
  assert.is(receiver.requests[0]!.headers.traceparent, `00-${forward.spanContext().traceId}-${forward.spanContext().spanId}-01`)

  // failed: process → store, forward (ERROR, DESTINATION_4XX), dlq; process ends as dead_lettered with status ERROR
  const bad = byName(spans, traceOf(failedId))
  const badProcess = only(bad, 'webhook.process')
  const badForward = only(bad, 'webhook.forward')
  const dlq = only(bad, 'webhook.dlq')
  assert.is(parentOf(dlq), badProcess.spanContext().spanId)
  assert.is(dlq.kind, SpanKind.PRODUCER)
  assert.is(dlq.attributes[SpanAttributes.MESSAGING_DESTINATION_NAME], w.keys.dlqStream)
  assert.is(dlq.attributes[SpanAttributes.ERROR_CODE], 'DESTINATION_4XX')
  assert.is(badForward.status.code, SpanStatusCode.ERROR)
  assert.is(badForward.attributes[SpanAttributes.ERROR_TYPE], 'DESTINATION_4XX')
  assert.is(badProcess.status.code, SpanStatusCode.ERROR)
  assert.is(badProcess.attributes[SpanAttributes.EVENT_OUTCOME], 'dead_lettered')
  assert.is(processing.status.code, SpanStatusCode.UNSET)
  // three traces, nothing outside them
  assert.is(new Set(spans.map((s) => s.spanContext().traceId)).size, 3)
})

Traces('with tracing off in the pipeline no span is recorded and the forward carries the stored traceparent', async (ctx) => {
  const { w, h, exporter } = ctx
  const receiver = await startReceiver()
  ctx.receivers.push(receiver)
  w.addTool({ id: 'gh-fwd', provider: 'github', secret: 'fwd-secret', processing_mode: 'store_and_forward', forward_url: receiver.url })
  const id = await postPush(h, 'gh-fwd', 'fwd-secret')
  const ingest = exporter.getFinishedSpans()
  assert.equal(ingest.map((s) => s.name), ['webhook.ingest'])
  w.start({ telemetry: {} })
  await eventually('settled', () => w.settled.length === 1)
  assert.is(exporter.getFinishedSpans().length, 1)
  const sc = ingest[0]!.spanContext()
  assert.is(receiver.requests[0]!.headers.traceparent, `00-${sc.traceId}-${sc.spanId}-01`)
  assert.is(ingest[0]!.attributes[SpanAttributes.EVENT_ID], id)
})

Traces.run()

const Hooks = suite('pipeline telemetry: hooks')

function capture(level = 'info') {
  const lines: { level: number; msg: string; unsettled?: number }[] = []
  const destination = new Writable({ write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l))
    done()
  } })
  return { logger: createLogger({ level, destination }), lines }
}

function message(): StreamMessage {
  const event = makeEvent()
  return { stream: 's', streamId: '1-0', event, fields: { event: JSON.stringify(event) }, deliveryCount: 1, readAtMs: Date.now(), settle: () => {}, nack: () => {} }
}

Hooks('a hold is one warning per outage however many batches are held, and one info line when it ends', () => {
  const { logger, lines } = capture()
  const t = pipelineTelemetry({ logger, group: 'g' })
  const down = new Error('connect ECONNREFUSED')
  t.hold(true, down); t.hold(true, down); t.hold(true, down)
  t.hold(false); t.hold(false)
  assert.equal(lines.map((l) => l.level), [40])
  t.hold(false)
  t.hold(false) // a stray "resumed" after the outage ended says nothing
  assert.equal(lines.map((l) => l.level), [40, 30])
  t.hold(true, down)
  assert.equal(lines.map((l) => l.level), [40, 30, 40])
})

Hooks('source errors warn; a shutdown with unsettled events warns with their count', () => {
  const { logger, lines } = capture()
  const t = pipelineTelemetry({ logger, group: 'g' })
  t.sourceError(new Error('NOGROUP'))
  t.closed({ drained: false, unsettled: 4 })
  t.closed({ drained: true, unsettled: 0 })
  assert.equal(lines.map((l) => l.level), [40, 40, 30])
  assert.is(lines[1]!.unsettled, 4)
})

Hooks('without tracing the envelope keeps its context (no span), and a settle costs only counter updates', () => {
  const metrics = createMetrics({ defaultMetrics: false })
  try {
    const t = pipelineTelemetry({ metrics, group: 'g' })
    const env = toEnvelope(message())
    assert.is(t.begin(env), env, 'the same envelope comes back: no copy, no span')
    const n = 100_000
    const started = performance.now()
    for (let i = 0; i < n; i++) t.settled({ ...env, outcome: 'stored' })
    const perEventUs = ((performance.now() - started) * 1000) / n
    // generous bound for a shared CI machine; measured ~0.3 µs
    assert.ok(perEventUs < 20, `settle hook costs ${perEventUs.toFixed(2)} µs per event`)
  } finally {
    metrics.close()
  }
})

Hooks.run()
