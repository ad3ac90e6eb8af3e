import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createProducer } from '../../src/sources/create-producer.js'
import { deliverySeen } from '../../src/sources/keys.js'
import { StreamPartitions } from '../../src/sources/partitions.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, type PipelineWorld } from '../helpers/pipeline.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'

interface Ctx { w: PipelineWorld }
const Producer = suite<Ctx>('createProducer', {} as Ctx)
Producer.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  ctx.w.addTool({ id: 'store-tool', provider: 'github', processing_mode: 'store' })
})
Producer.after.each(async (ctx) => { await ctx.w.close() })

const push = { event_type: 'billing.invoice.paid', tool_id: 'store-tool', payload: { amount: 5 } }

Producer('sent events land on the stream in the entry format the worker stores, completed with id, timestamp and defaults', async ({ w }) => {
  const producer = createProducer({ redis: w.redis, keys: w.keys })
  const one = await producer.send({ ...push, repository: 'acme/api', tenant_id: 'acme' })
  const many = await producer.sendMany([{ ...push, payload: { amount: 6 } }, { ...push, id: 'inv-7', payload: { amount: 7 } }])
  assert.match(one.id, /^[0-9a-f-]{36}$/)
  assert.match(one.streamId ?? '', /^\d+-\d+$/)
  assert.equal(many.map((r) => [r.duplicate, typeof r.streamId]), [[false, 'string'], [false, 'string']])
  assert.is(many[1]?.id, 'inv-7')
  assert.is(Number(await w.redis.xlen(w.keys.stream)), 3)
  w.start()
  await eventually('3 settled', () => w.settled.length === 3)
  assert.equal(w.settled.map((e) => e.outcome), ['stored', 'stored', 'stored'])
  const rows = await w.db.db.selectFrom('webhook_events').select(['id', 'tenant_id', 'repository', 'payload']).orderBy('payload').execute()
  assert.equal(rows.map((r) => [r.tenant_id, r.repository, r.payload]), [
    ['acme', 'acme/api', { amount: 5 }], ['default', '', { amount: 6 }], ['default', '', { amount: 7 }],
  ])
})

Producer('a delivery id sent twice for one tool is added once, the second send is a duplicate; another tool with the same id is its own event', async ({ w }) => {
  const producer = createProducer({ redis: w.redis, keys: w.keys })
  const first = await producer.send({ ...push, id: 'd-1' })
  const again = await producer.send({ ...push, id: 'd-1', payload: { amount: 99 } })
  const otherTool = await producer.send({ ...push, id: 'd-1', tool_id: 'other-tool' })
  assert.is(first.duplicate, false)
  assert.equal(again, { id: 'd-1', streamId: null, duplicate: true })
  assert.is(otherTool.duplicate, false)
  assert.is(Number(await w.redis.xlen(w.keys.stream)), 2)
  // the entry ingest records for the same delivery, so HTTP and producer sends dedupe against each other
  const seen = deliverySeen(w.keys, 'store-tool', 'd-1', 86_400)
  assert.is(await w.redis.call('HEXISTS', seen.buckets[0], seen.field), 1)
  assert.ok(await w.redis.ttl(seen.buckets[0]) > 86_000)
})

Producer('an invalid event is refused naming the field, and sendMany sends nothing when one event is invalid', async ({ w }) => {
  const producer = createProducer({ redis: w.redis, keys: w.keys })
  for (const [bad, field] of [[{ ...push, id: 'has space' }, 'id'], [{ ...push, tool_id: '' }, 'tool_id'], [{ ...push, timestamp: 'yesterday' }, 'timestamp']] as const) {
    try {
      await producer.send(bad)
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, new RegExp(`event field "${field}" must be`))
      assert.is((err as { code?: string }).code, 'INVALID_EVENT')
    }
  }
  try {
    await producer.sendMany([push, push, { ...push, payload: undefined as never, event_type: 7 as never }])
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /event field "event_type" must be a non-empty string; got 7 \(createProducer.sendMany, event 2\)/)
  }
  assert.is(Number(await w.redis.xlen(w.keys.stream)), 0)
})

Producer('sendMany appends the events in the order given, those with their own id (deduped first) and those without alike', async ({ w }) => {
  const producer = createProducer({ redis: w.redis, keys: w.keys })
  const events = Array.from({ length: 20 }, (_, i) => ({ ...push, ...(i % 2 === 1 ? { id: `ord-${i}` } : {}), payload: { i } }))
  // a Redis that has not cached the dedupe script answers the first one NOSCRIPT, and it is sent again
  await w.redis.call('SCRIPT', 'FLUSH')
  await producer.sendMany(events)
  const order = (await w.redis.xrange(w.keys.stream, '-', '+')).map(([, fields]) => {
    const at = fields.indexOf('payload')
    return (JSON.parse(fields[at + 1] as string) as { i: number }).i
  })
  assert.equal(order, events.map((_, i) => i))
})

Producer('with partitions each event goes to the partition the workers read for its key', async ({ w }) => {
  const producer = createProducer({ redis: w.redis, keys: w.keys, partitions: 4 })
  const partitions = new StreamPartitions({ redis: w.redis, keys: w.keys, count: 4 })
  const events = Array.from({ length: 12 }, (_, i) => ({ ...push, repository: `acme/r${i}`, tenant_id: 'acme' }))
  await producer.sendMany(events)
  const lengths = await Promise.all(partitions.keys.map(async (k) => Number(await w.redis.xlen(k.stream))))
  const expected = [0, 0, 0, 0]
  for (const e of events) {
    const i = partitions.indexOf(e)
    expected[i] = (expected[i] ?? 0) + 1
  }
  assert.equal(lengths, expected)
  assert.ok(lengths.filter((n) => n > 0).length >= 2, `events spread over partitions (${lengths.join(', ')})`)
  assert.is(lengths.reduce((a, b) => a + b, 0), 12)
})

Producer.run()
