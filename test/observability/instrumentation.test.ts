import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseInstrumentations } from '../../src/observability/instrumentation.js'
import { eventually } from '../helpers/events.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess } from '../helpers/service-process.js'

interface OtlpSpan { name: string; kind: number; attributes: { key: string; value: { stringValue?: string } }[] }

test('OTEL_NODE_ENABLED_INSTRUMENTATIONS names http, pg and ioredis; anything else is refused naming the variable', () => {
  assert.equal(parseInstrumentations(' http, PG ,ioredis,pg'), ['http', 'pg', 'ioredis'])
  assert.equal(parseInstrumentations(undefined), [])
  assert.throws(() => parseInstrumentations('http,mysql'),
    /^OTEL_NODE_ENABLED_INSTRUMENTATIONS must be a comma-separated list of http, pg, ioredis; got unknown "mysql"/)
})

test('with OTEL_NODE_ENABLED_INSTRUMENTATIONS=http,pg,ioredis the service exports spans of ingest HTTP, pg queries and Redis commands', async () => {
  const spans: OtlpSpan[] = []
  const collector = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }
      for (const r of body.resourceSpans) for (const s of r.scopeSpans) spans.push(...s.spans)
      res.end('{}')
    })
  })
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve))
  const env = {
    REDIS_URL: (await sharedRedis()).url, DATABASE_URL: await (await sharedPostgres()).createDatabase(), STREAM_PREFIX: `otel-${randomUUID()}:`,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,pg,ioredis',
    OTEL_SERVICE_NAME: 'hookstream-instrumented',
  }
  const svc = await startServiceProcess(env, 'tools:\n  - { id: gh, provider: github, secret: s3cret-value }\n')
  try {
    const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'acme/api' } })
    const res = await fetch(`${svc.ingestUrl}/webhooks/gh`, { method: 'POST', body, headers: {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', 's3cret-value').update(body).digest('hex')}` } })
    assert.is(res.status, 202)
    await eventually('the store span exported', async () => spans.some((s) => s.name === 'webhook.store'), 20_000)
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0, svc.output())
  collector.close()
  const attr = (s: OtlpSpan, key: string) => s.attributes.find((a) => a.key === key)?.value.stringValue
  const system = (s: OtlpSpan) => attr(s, 'db.system.name') ?? attr(s, 'db.system')
  assert.ok(spans.some((s) => system(s) === 'postgresql'), `a pg span in ${[...new Set(spans.map((s) => s.name))].join(', ')}`)
  assert.ok(spans.some((s) => system(s) === 'redis'), 'an ioredis span')
  assert.ok(spans.some((s) => s.kind === 2 && /^POST\b/.test(s.name)), 'an http server span for the ingest request')
})

test.run()
