import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { entryFields } from '../../src/core/stream-entry.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { pipelineWorld, startReceiver, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld }
const Format = suite<Ctx>('webhook pipeline: stream entry formats', {} as Ctx)

Format.before.each(async (ctx) => {
  const pg = await sharedPostgres()
  ctx.w = await pipelineWorld((await sharedRedis()).url, await pg.createDatabase())
  ctx.w.addTool({ id: 'store-tool', provider: 'github', processing_mode: 'store' })
})
Format.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

const COLUMNS = ['tool_id', 'tenant_id', 'event_type', 'repository', 'payload', 'received_at', 'transformed'] as const

Format('a v2 entry and a seeds-format entry of the same event become identical rows through one pipeline', async ({ w }) => {
  const payloadText = '{ "n": 12345678901234567890, "s": "caf\u00e9 \u2713", "nested": {"a": [1, 2.50, null]} }'
  const base = {
    tool_id: 'store-tool', tenant_id: 'acme', repository: 'acme/r', payload: JSON.parse(payloadText) as unknown,
    auth_context: { provider: 'github', verified: true }, metadata: { headers: { 'x-github-event': 'push' } },
  }
  const v1 = makeEvent({ ...base, id: 'seeds-1' })
  const v2 = makeEvent({ ...base, id: 'v2-1', timestamp: v1.timestamp })
  // the seeds' form, as an outside producer writes it: one field "event"
  await w.redis.call('XADD', w.keys.stream, '*', 'event', JSON.stringify({ ...v1, payload: 0 }).replace('"payload":0', `"payload":${payloadText}`))
  await w.redis.call('XADD', w.keys.stream, '*', ...entryFields(v2, payloadText))
  w.start()
  await eventually('2 settled', () => w.settled.length === 2)
  const rows = await w.db.db.selectFrom('webhook_events').selectAll().orderBy('id').execute()
  assert.equal(rows.map((r) => r.id), ['seeds-1', 'v2-1'])
  const [a, b] = rows.map((r) => COLUMNS.map((c) => (r[c] instanceof Date ? (r[c] as Date).toISOString() : r[c])))
  assert.equal(a, b)
  assert.equal(rows[0]!.payload, { n: 12345678901234567890, s: 'caf\u00e9 \u2713', nested: { a: [1, 2.5, null] } })
  assert.equal(w.settled.map((e) => e.outcome), ['stored', 'stored'])
  await eventually('acked', async () => (await w.pending()) === 0)
  assert.is(await w.rowCount('webhook_dlq'), 0)
})

Format('a v2 payload that is not JSON is dead-lettered alone with PAYLOAD_NOT_JSON, its neighbours stored', async ({ w }) => {
  const good = [makeEvent({ tool_id: 'store-tool' }), makeEvent({ tool_id: 'store-tool' })]
  const bad = makeEvent({ tool_id: 'store-tool', id: 'not-json-1' })
  await w.redis.call('XADD', w.keys.stream, '*', ...entryFields(good[0]!))
  await w.redis.call('XADD', w.keys.stream, '*', ...entryFields(bad, '{"broken": '))
  await w.redis.call('XADD', w.keys.stream, '*', ...entryFields(good[1]!))
  w.start()
  await eventually('3 settled', () => w.settled.length === 3)
  assert.is(await w.rowCount(), 2)
  const dlq = await w.db.db.selectFrom('webhook_dlq').select(['event_id', 'error_code', 'error_class', 'event_format', 'event_raw']).execute()
  assert.is(dlq.length, 1)
  assert.equal([dlq[0]!.event_id, dlq[0]!.error_code, dlq[0]!.error_class], ['not-json-1', 'PAYLOAD_NOT_JSON', 'permanent'])
  // kept raw, the payload's bytes as the producer wrote them, for whoever fixes the producer
  assert.is(dlq[0]!.event_format, 'raw')
  const raw = Buffer.from(dlq[0]!.event_raw!).toString()
  assert.ok(raw.startsWith('{"id":"not-json-1",') && raw.endsWith('"payload":{"broken": }'), raw)
  await eventually('acked', async () => (await w.pending()) === 0)
})

Format('a v2 entry is forwarded with its payload bytes as the producer wrote them', async ({ w }) => {
  const receiver = await startReceiver()
  try {
    w.addTool({ id: 'fwd', provider: 'github', secret: 's', processing_mode: 'store_and_forward', forward_url: receiver.url })
    const payloadText = '{"n":12345678901234567890,  "s":"\\u00e9"}'
    const event = makeEvent({ tool_id: 'fwd', payload: JSON.parse(payloadText) as unknown, metadata: { headers: { a: 'b' } } })
    await w.redis.call('XADD', w.keys.stream, '*', ...entryFields(event, payloadText))
    w.start()
    await eventually('1 settled', () => w.settled.length === 1)
    assert.is(receiver.requests.length, 1)
    const body = receiver.requests[0]!.body
    assert.ok(body.endsWith(`"payload":${payloadText}}`), body.slice(-80))
    assert.equal(JSON.parse(body), JSON.parse(JSON.stringify(event)))
    assert.equal(w.settled.map((e) => e.outcome), ['forwarded'])
  } finally {
    await receiver.close()
  }
})

Format('transform mode reads a v2 payload, and a v2 payload that is not JSON fails the transform, not the batch', async ({ w }) => {
  w.addTool({ id: 'tx', provider: 'github', processing_mode: 'transform_and_store', transform: { n: 'n' } })
  const ok = makeEvent({ tool_id: 'tx', id: 'tx-ok', payload: { n: 7 } })
  const bad = makeEvent({ tool_id: 'tx', id: 'tx-bad' })
  await w.redis.call('XADD', w.keys.stream, '*', ...entryFields(ok))
  await w.redis.call('XADD', w.keys.stream, '*', ...entryFields(bad, 'nope'))
  w.start()
  await eventually('2 settled', () => w.settled.length === 2)
  const row = await w.db.db.selectFrom('webhook_events').select(['id', 'transformed']).execute()
  assert.equal(row, [{ id: 'tx-ok', transformed: { n: 7 } }])
  const dlq = await w.db.db.selectFrom('webhook_dlq').select(['event_id', 'error_code']).execute()
  assert.equal(dlq, [{ event_id: 'tx-bad', error_code: 'TRANSFORM_FAILED' }])
})

Format.run()
