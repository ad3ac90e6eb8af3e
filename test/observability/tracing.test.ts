import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace'
import { contextFromTraceparent } from '../../src/core/envelope.js'
import { PipelineError } from '../../src/core/errors.js'
import { eventAttributes, MessagingOperation, SpanAttributes } from '../../src/observability/attributes.js'
import { samplerFromEnv, startTracing, type Tracing } from '../../src/observability/start-tracing.js'
import { traceparentOf, withSpan } from '../../src/observability/tracing.js'

const Tracing = suite<{ exporter: InMemorySpanExporter; tracing?: Tracing }>('tracing', { exporter: new InMemorySpanExporter() })
Tracing.before.each((ctx) => {
  ctx.exporter = new InMemorySpanExporter()
  ctx.tracing = startTracing({ serviceName: 'hookstream-test', exporter: ctx.exporter })
})
Tracing.after.each(async (ctx) => { await ctx.tracing?.shutdown() })

const event = {
  id: 'evt-1', event_type: 'webhook.github.push', repository: 'o/r', tenant_id: 't1', tool_id: 'gh-main',
  payload: {}, timestamp: '2026-01-01T00:00:00Z', retry_count: 2,
}

Tracing('a span started from a stored traceparent is a child of the ingest span, in the same trace', async ({ exporter }) => {
  const traceparent = withSpan('hookstream.ingest', ROOT_CONTEXT, {}, (ctx) => traceparentOf(ctx), SpanKind.SERVER)
  assert.match(traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
  const parentCtx = contextFromTraceparent(traceparent)
  await withSpan('hookstream.process', parentCtx, eventAttributes(event), async (ctx) => {
    withSpan('hookstream.store', ctx, {}, () => 1, SpanKind.CLIENT)
  }, SpanKind.CONSUMER)
  const spans = exporter.getFinishedSpans()
  assert.equal(spans.map((s) => s.name), ['hookstream.ingest', 'hookstream.store', 'hookstream.process'])
  const [ingest, store, processing] = spans
  const ingestId = ingest!.spanContext()
  assert.is(processing!.spanContext().traceId, ingestId.traceId)
  assert.is(processing!.parentSpanContext?.spanId, ingestId.spanId)
  assert.is(store!.parentSpanContext?.spanId, processing!.spanContext().spanId)
  assert.is(traceparent, `00-${ingestId.traceId}-${ingestId.spanId}-01`)
  assert.is(processing!.kind, SpanKind.CONSUMER)
})

Tracing('a throw or a rejection sets status ERROR, records the exception and the error code, and is rethrown', async ({ exporter }) => {
  try {
    withSpan('sync', ROOT_CONTEXT, {}, () => { throw new Error('boom') })
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).message, 'boom')
  }
  try {
    await withSpan('async', ROOT_CONTEXT, {}, async () => {
      throw new PipelineError('transient', 'DESTINATION_5XX', 'forward got 503')
    })
    assert.unreachable()
  } catch (err) {
    assert.is((err as PipelineError).code, 'DESTINATION_5XX')
  }
  await withSpan('fine', ROOT_CONTEXT, {}, async () => 42)
  const [sync, async, fine] = exporter.getFinishedSpans()
  assert.is(sync!.status.code, SpanStatusCode.ERROR)
  assert.is(sync!.status.message, 'boom')
  assert.is(sync!.events.filter((e) => e.name === 'exception').length, 1)
  assert.is(async!.status.code, SpanStatusCode.ERROR)
  assert.is(async!.attributes[SpanAttributes.ERROR_TYPE], 'DESTINATION_5XX')
  assert.is(async!.attributes[SpanAttributes.ERROR_CODE], 'DESTINATION_5XX')
  assert.is(fine!.status.code, SpanStatusCode.UNSET)
  assert.is(exporter.getFinishedSpans().length, 3)
})

Tracing('spans carry the attribute names defined in attributes.ts', ({ exporter }) => {
  withSpan('hookstream.process', ROOT_CONTEXT, {
    ...eventAttributes(event, 'webhook_events', '1718000000000-0'),
    [SpanAttributes.MESSAGING_OPERATION_TYPE]: MessagingOperation.PROCESS,
  }, () => undefined)
  const attrs = exporter.getFinishedSpans()[0]!.attributes
  assert.equal(attrs, {
    'hookstream.event.id': 'evt-1',
    'hookstream.event.type': 'webhook.github.push',
    'hookstream.tool.id': 'gh-main',
    'hookstream.tenant.id': 't1',
    'hookstream.event.retry_count': 2,
    'messaging.system': 'redis',
    'messaging.destination.name': 'webhook_events',
    'messaging.message.id': '1718000000000-0',
    'messaging.operation.type': 'process',
  })
})

Tracing('the span is the active one inside fn, and the caller\'s active context is never the parent', ({ exporter }) => {
  withSpan('outer', ROOT_CONTEXT, {}, () => {
    assert.ok(trace.getActiveSpan(), 'fn runs with its span active')
    withSpan('unrelated', ROOT_CONTEXT, {}, () => undefined)
  })
  const [unrelated, outer] = exporter.getFinishedSpans()
  assert.is(unrelated!.parentSpanContext, undefined)
  assert.is.not(unrelated!.spanContext().traceId, outer!.spanContext().traceId)
})

Tracing('a second startTracing while one runs is refused; an invalid endpoint is named', () => {
  try {
    startTracing({ serviceName: 'x', exporter: new InMemorySpanExporter() })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /already running; call shutdown\(\)/)
  }
  try {
    startTracing({ serviceName: 'x', otlpEndpoint: 'collector:4318' })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /^OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/)
  }
})

const Disabled = suite('tracing disabled')

Disabled('with no endpoint and no exporter nothing is registered, yet a remote parent passes through', () => {
  const tracing = startTracing({ serviceName: 'hookstream' })
  assert.is(tracing.enabled, false)
  const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const out = withSpan('process', contextFromTraceparent(incoming), {}, (ctx, span) => {
    assert.is(span.isRecording(), false)
    return traceparentOf(ctx)
  })
  assert.is(out, incoming)
  assert.is(traceparentOf(ROOT_CONTEXT), undefined)
})

Disabled('with an OTLP endpoint, spans are posted as a batch to <endpoint>/v1/traces on shutdown', async () => {
  const requests: { url: string; body: string }[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => { requests.push({ url: req.url ?? '', body: Buffer.concat(chunks).toString() }); res.end('{}') })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const { port } = server.address() as AddressInfo
    const tracing = startTracing({ serviceName: 'hookstream-otlp', otlpEndpoint: `http://127.0.0.1:${port}/` })
    withSpan('hookstream.batched', ROOT_CONTEXT, {}, () => undefined)
    withSpan('hookstream.batched', ROOT_CONTEXT, {}, () => undefined)
    assert.is(requests.length, 0, 'batched, not sent per span')
    await tracing.shutdown()
    assert.is(requests.length, 1)
    assert.is(requests[0]!.url, '/v1/traces')
    assert.is(requests[0]!.body.split('hookstream.batched').length - 1, 2)
    assert.match(requests[0]!.body, /hookstream-otlp/)
  } finally {
    server.close()
  }
})

Disabled('the service name, resource attributes, OTLP headers and sampler come from the standard OTEL_* variables', async () => {
  const requests: { headers: Record<string, unknown>; body: string }[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => { requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString() }); res.end('{}') })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const set = { OTEL_SERVICE_NAME: 'hooks-from-env', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=staging-7', OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant-key=k-123' }
  const before = Object.fromEntries(Object.keys(set).map((k) => [k, process.env[k]]))
  Object.assign(process.env, set)
  try {
    const { port } = server.address() as AddressInfo
    const tracing = startTracing({ otlpEndpoint: `http://127.0.0.1:${port}`, env: { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' } })
    withSpan('hookstream.env', ROOT_CONTEXT, {}, () => undefined)
    await tracing.shutdown()
    const off = startTracing({ otlpEndpoint: `http://127.0.0.1:${port}`, env: { OTEL_TRACES_SAMPLER: 'always_off' } })
    withSpan('hookstream.sampled-out', ROOT_CONTEXT, {}, () => undefined)
    await off.shutdown()
    assert.is(requests.length, 1, 'the always_off run exports nothing')
    assert.is(requests[0]!.headers['x-tenant-key'], 'k-123')
    assert.match(requests[0]!.body, /hooks-from-env/)
    assert.match(requests[0]!.body, /staging-7/)
    assert.match(requests[0]!.body, /hookstream\.env/)
  } finally {
    for (const [k, v] of Object.entries(before)) { if (v === undefined) delete process.env[k]; else process.env[k] = v }
    server.close()
  }
})

Disabled('an unknown OTEL_TRACES_SAMPLER or a ratio outside 0..1 is named in the error', () => {
  assert.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'sometimes' }), /^OTEL_TRACES_SAMPLER must be one of always_on, always_off/)
  assert.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '5' }), /^OTEL_TRACES_SAMPLER_ARG must be a sampling ratio from 0 to 1/)
  assert.is(samplerFromEnv({}).toString(), samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_always_on' }).toString())
})

Tracing.run()
Disabled.run()
