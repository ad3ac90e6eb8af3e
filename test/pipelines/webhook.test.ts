import { suite } from 'uvu'
import { sql } from 'kysely'
import * as assert from 'uvu/assert'
import { createHmac } from 'node:crypto'
import { sharedPostgres, sharedRedis, startPostgres } from '../helpers/servers.js'
import { eventually, makeEvent, progressTo } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { pipelineWorld, startReceiver, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld }
const Pipeline = suite<Ctx>('webhook pipeline', {} as Ctx)

Pipeline.before.each(async (ctx) => {
  const pg = await sharedPostgres()
  ctx.w = await pipelineWorld((await sharedRedis()).url, await pg.createDatabase())
  ctx.w.addTool({ id: 'store-tool', provider: 'github', processing_mode: 'store' })
})
Pipeline.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

const fast = { initial_interval: '10ms', max_interval: '40ms', multiplier: 2, max_retries: 3, max_elapsed_time: '1m' }

function verifySignature(secret: string, headers: Record<string, unknown>, body: string): boolean {
  const expected = createHmac('sha256', Buffer.from(secret))
    .update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`).digest('base64')
  return String(headers['webhook-signature']).split(' ').includes(`v1,${expected}`)
}

Pipeline('store mode: every event becomes one row with the right columns, then nothing is pending', async ({ w }) => {
  const events = await w.enqueue(25, (i) => ({ repository: `acme/r${i}`, payload: { i } }))
  w.start()
  await eventually('25 settled', () => w.settled.length === 25)
  assert.is(await w.rowCount(), 25)
  const row = await w.db.db.selectFrom('webhook_events').selectAll().where('id', '=', events[3]!.id).executeTakeFirstOrThrow()
  assert.equal(
    [row.tool_id, row.tenant_id, row.event_type, row.repository, row.payload, row.transformed, row.forwarded_at],
    ['store-tool', 'acme', 'webhook.github.push', 'acme/r3', { i: 3 }, null, null])
  assert.is(new Date(row.received_at).toISOString(), events[3]!.timestamp)
  assert.match(row.stream_id, /^\d+-\d+$/)
  assert.equal(new Set(w.settled.map((e) => e.outcome)), new Set(['stored']))
  await eventually('acked', async () => (await w.pending()) === 0)
  assert.is(await w.rowCount('webhook_dlq'), 0)
})

Pipeline('forward mode: stored, POSTed once with a signature the receiver verifies, and marked forwarded', async ({ w }) => {
  const receiver = await startReceiver()
  try {
    w.addTool({ id: 'fwd', provider: 'github', secret: 'fwd-secret', processing_mode: 'store_and_forward', forward_url: receiver.url })
    const events = await w.enqueue(10, { tool_id: 'fwd' })
    w.start()
    await eventually('10 settled', () => w.settled.length === 10)
    assert.is(receiver.requests.length, 10)
    for (const r of receiver.requests) assert.ok(verifySignature('fwd-secret', r.headers, r.body), 'signature verifies')
    assert.equal(new Set(receiver.requests.map((r) => JSON.parse(r.body).id)), new Set(events.map((e) => e.id)))
    const forwarded = await w.db.db.selectFrom('webhook_events').select('id').where('forwarded_at', 'is not', null).execute()
    assert.is(forwarded.length, 10)
    assert.equal(new Set(w.settled.map((e) => e.outcome)), new Set(['forwarded']))
  } finally {
    await receiver.close()
  }
})

Pipeline('forward mode: an event written twice and read in one batch is stored once and POSTed once; the second copy is a duplicate', async ({ w }) => {
  const receiver = await startReceiver()
  try {
    w.addTool({ id: 'fwd', provider: 'github', secret: 'fwd-secret', processing_mode: 'store_and_forward', forward_url: receiver.url })
    const event = makeEvent({ tool_id: 'fwd' })
    await w.stream.addMany([event, event]) // a producer without ingest's "delivery seen" check sent it twice
    w.start()
    await eventually('2 settled', () => w.settled.length === 2)
    assert.equal(w.settled.map((e) => e.outcome), ['forwarded', 'duplicate'])
    assert.is(receiver.requests.length, 1)
    assert.is(await w.rowCount(), 1)
  } finally {
    await receiver.close()
  }
})

Pipeline('forward mode sends the stream entry\'s JSON byte for byte, so the payload keeps the sender\'s numbers and escapes', async ({ w }) => {
  const receiver = await startReceiver()
  try {
    w.addTool({ id: 'fwd', provider: 'github', secret: 'fwd-secret', processing_mode: 'store_and_forward', forward_url: receiver.url })
    // JSON.parse + JSON.stringify would send 1.5, 12345678901234567000 and "é" instead
    const raw = (id: string, extra = '') => `{"id":"${id}","event_type":"webhook.github.push","repository":"acme/api","tenant_id":"acme",` +
      `"tool_id":"fwd","payload":{"amount":1.50,"big":12345678901234567890,"name":"caf\\u00e9"},"timestamp":"${new Date().toISOString()}"${extra}}`
    const exact = raw('raw-1', ',"retry_count":0')
    const requeued = raw('raw-2', ',"retry_count":0') // a DLQ row kept raw: its retry count travels beside it
    const noRetryCount = raw('raw-3') // a producer that leaves retry_count out: decoding makes it 0
    await w.redis.call('XADD', w.keys.stream, '*', 'event', exact)
    await w.redis.call('XADD', w.keys.stream, '*', 'event', requeued, 'retry_count', '2')
    await w.redis.call('XADD', w.keys.stream, '*', 'event', noRetryCount)
    w.start()
    await eventually('3 settled', () => w.settled.length === 3)
    assert.equal(w.settled.map((e) => e.outcome), ['forwarded', 'forwarded', 'forwarded'])
    const bodies = new Map(receiver.requests.map((r) => [JSON.parse(r.body).id as string, r]))
    assert.is(bodies.size, 3)
    assert.is(bodies.get('raw-1')!.body, exact, 'the entry went out as it was written')
    assert.ok(verifySignature('fwd-secret', bodies.get('raw-1')!.headers, bodies.get('raw-1')!.body), 'signed over the bytes sent')
    assert.is(JSON.parse(bodies.get('raw-2')!.body).retry_count, 2, 'the re-queue\'s retry count, not the one inside the JSON')
    assert.is(JSON.parse(bodies.get('raw-3')!.body).retry_count, 0, 'the decoded event, with its retry count')
    for (const r of receiver.requests) assert.ok(verifySignature('fwd-secret', r.headers, r.body), 'signature verifies')
  } finally {
    await receiver.close()
  }
})

Pipeline('transform mode: stores the JSONata result next to the original payload', async ({ w }) => {
  w.addTool({ id: 'tx', provider: 'github', processing_mode: 'transform_and_store',
    transform: { ref: 'ref', commits: '$count(commits)', author: 'commits[0].author.name' } })
  const [event] = await w.enqueue(1, { tool_id: 'tx', payload: { ref: 'refs/heads/main', commits: [{ author: { name: 'ada' } }, { author: { name: 'bob' } }] } })
  w.start()
  await eventually('settled', () => w.settled.length === 1)
  const row = await w.db.db.selectFrom('webhook_events').selectAll().where('id', '=', event!.id).executeTakeFirstOrThrow()
  assert.equal(row.transformed, { ref: 'refs/heads/main', commits: 2, author: 'ada' })
  assert.equal((row.payload as { ref: string }).ref, 'refs/heads/main')
  assert.is(w.settled[0]!.outcome, 'transformed')
})

Pipeline('transform mode with orderBy: a key\'s events are stored in stream order, across the parts of each batch', async ({ w }) => {
  w.addTool({ id: 'tx', provider: 'github', processing_mode: 'transform_and_store', transform: { i: 'i', slow: '$contains(s, /^(a+)+$/)' },
    transform_timeout: '10s' })
  // event 80 backtracks for seconds. The pool takes a batch of 100 as two jobs of 64 and 36 events, one per worker:
  // events 0-63 come back first and leave as a part of their own (a prefix of at least a quarter of the batch),
  // 64-99 follow once 80 is done, and the events of r2 after it (83, 86, …) wait for it although they were ready
  await w.enqueue(300, (i) => ({ tool_id: 'tx', repository: `acme/r${i % 3}`, payload: { i, s: i === 80 ? `${'a'.repeat(25)}!` : 'b' } }))
  w.start({ batchSize: 100, orderBy: (env) => env.message.event.repository ?? '' })
  await eventually('300 settled', () => w.settled.length === 300)
  // xmin is the id of the transaction (one INSERT each) that wrote the row: along the stream it must not go back
  const { rows } = await sql<{ repository: string; stream_id: string; payload: { i: number }; tx: string }>`
    SELECT repository, stream_id, payload, xmin::text AS tx FROM webhook_events`.execute(w.db.db)
  const seq = (id: string) => id.split('-').map(BigInt) as [bigint, bigint]
  rows.sort((a, b) => { const [am, as] = seq(a.stream_id); const [bm, bs] = seq(b.stream_id); return am === bm ? Number(as - bs) : Number(am - bm) })
  const backwards = rows.filter((row, n) => rows.slice(0, n).some((before) => before.repository === row.repository && Number(before.tx) > Number(row.tx)))
  assert.is(rows.length, 300)
  assert.equal(rows.map((row) => row.payload.i), Array.from({ length: 300 }, (_, i) => i))
  assert.equal(backwards.map((row) => row.payload.i), [])
  assert.ok(new Set(rows.map((row) => row.tx)).size > 3, 'the batches were stored in parts, several INSERTs per batch')
})

Pipeline('a transform rule that fails is dead-lettered at once, naming the rule', async ({ w }) => {
  w.addTool({ id: 'tx', provider: 'github', processing_mode: 'transform_and_store', transform: { total: '$sum(items)' } })
  await w.enqueue(1, { tool_id: 'tx', payload: { items: ['a', 'b'] } })
  w.start()
  await eventually('settled', () => w.settled.length === 1)
  const dlq = await w.db.db.selectFrom('webhook_dlq').selectAll().executeTakeFirstOrThrow()
  assert.is(dlq.error_code, 'TRANSFORM_FAILED')
  assert.match(dlq.error, /transform rule "total" failed/)
  assert.is(await w.rowCount(), 0)
})

Pipeline('one event to a looping transform, then 1,000 events to another tool: all stored within seconds, the looping one dead-lettered', async ({ w }) => {
  w.addTool({ id: 'loop', provider: 'github', processing_mode: 'transform_and_store', transform: '($f := function($n){ $f($n) }; $f(1))' })
  w.addTool({ id: 'tx', provider: 'github', processing_mode: 'transform_and_store', transform: { i: 'i' } })
  const [looping] = await w.enqueue(1, { tool_id: 'loop' })
  await w.enqueue(1000, (i) => ({ tool_id: 'tx', payload: { i } }))
  const started = Date.now()
  w.start()
  await eventually('1,001 settled', () => w.settled.length === 1001, 20_000)
  assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`)
  assert.is(await w.rowCount(), 1000)
  const dlq = await w.db.db.selectFrom('webhook_dlq').selectAll().execute()
  assert.equal(dlq.map((r) => [r.event_id, r.error_code]), [[looping!.id, 'TRANSFORM_TIMEOUT']])
})

Pipeline('the same event id enqueued three times is stored once; the copies are settled as duplicates', async ({ w }) => {
  const event = makeEvent({ tool_id: 'store-tool' })
  await w.stream.addMany([event, event, event])
  w.start()
  await eventually('3 settled', () => w.settled.length === 3)
  assert.is(await w.rowCount(), 1)
  assert.equal(w.settled.map((e) => e.outcome).sort(), ['duplicate', 'duplicate', 'stored'])
  // and a redelivery later (as after a crash between store and ack) is recognised by the done marker
  await w.stream.add(event)
  await eventually('4 settled', () => w.settled.length === 4)
  assert.is(w.settled[3]!.outcome, 'duplicate')
  assert.is(await w.rowCount(), 1)
  await eventually('acked', async () => (await w.pending()) === 0)
})

Pipeline('an event stored before its done marker was written (crash) is not stored twice', async ({ w }) => {
  const event = makeEvent({ tool_id: 'store-tool' })
  await w.db.db.insertInto('webhook_events').values({
    id: event.id, tool_id: event.tool_id, tenant_id: event.tenant_id, event_type: event.event_type, repository: event.repository,
    payload: JSON.stringify(event.payload), stream_id: '1-0', received_at: event.timestamp,
  }).execute()
  await w.stream.add(event)
  w.start()
  await eventually('settled', () => w.settled.length === 1)
  assert.is(w.settled[0]!.outcome, 'duplicate')
  assert.is(await w.rowCount(), 1)
})

Pipeline('a receiver that fails twice then succeeds: stored and forwarded once, with 2 retries', async ({ w }) => {
  const receiver = await startReceiver((n) => (n <= 2 ? 503 : 200))
  try {
    w.addTool({ id: 'flaky', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url, retry_policy: fast })
    const [event] = await w.enqueue(1, { tool_id: 'flaky' })
    w.start()
    await eventually('settled', () => w.settled.length === 1)
    assert.is(w.settled[0]!.outcome, 'forwarded')
    assert.is(receiver.requests.length, 3)
    assert.equal(w.retries.map((r) => [r.event, r.attempt, r.code]), [[event!.id, 1, 'DESTINATION_5XX'], [event!.id, 2, 'DESTINATION_5XX']])
    assert.is(await w.rowCount(), 1)
    assert.is(await w.rowCount('webhook_dlq'), 0)
  } finally {
    await receiver.close()
  }
})

Pipeline('a receiver answering 400 dead-letters the event at once, without retries', async ({ w }) => {
  const receiver = await startReceiver(() => 400)
  try {
    w.addTool({ id: 'bad', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url, retry_policy: fast })
    const [event] = await w.enqueue(1, { tool_id: 'bad' })
    w.start()
    await eventually('settled', () => w.settled.length === 1)
    assert.is(receiver.requests.length, 1)
    assert.is(w.retries.length, 0)
    const dlq = await w.db.db.selectFrom('webhook_dlq').selectAll().executeTakeFirstOrThrow()
    assert.equal([dlq.event_id, dlq.error_code, dlq.error_class, dlq.status, dlq.retry_count], [event!.id, 'DESTINATION_4XX', 'permanent', 'pending', 0])
    assert.match(dlq.error, /got HTTP 400 from http:\/\/127\.0\.0\.1:\d+\/hook/)
    assert.equal((dlq.event as { id: string }).id, event!.id)
    assert.is(await w.redis.xlen(w.keys.dlqStream), 1)
    const audit = await w.db.db.selectFrom('webhook_audit_log').selectAll().where('event_id', '=', event!.id).execute()
    assert.equal(audit.map((a) => a.action), ['dead_lettered'])
    await eventually('acked', async () => (await w.pending()) === 0)
  } finally {
    await receiver.close()
  }
})

Pipeline('a receiver that always answers 503 gets max_retries retries, then the event is dead-lettered', async ({ w }) => {
  const receiver = await startReceiver(() => 503)
  try {
    w.addTool({ id: 'down', provider: 'github', processing_mode: 'store_and_forward', forward_url: receiver.url, retry_policy: fast })
    await w.enqueue(1, { tool_id: 'down' })
    w.start()
    await eventually('settled', () => w.settled.length === 1)
    assert.is(receiver.requests.length, 4)
    assert.equal(w.retries.map((r) => r.attempt), [1, 2, 3])
    const dlq = await w.db.db.selectFrom('webhook_dlq').selectAll().executeTakeFirstOrThrow()
    assert.equal([dlq.error_code, dlq.error_class], ['DESTINATION_5XX', 'transient'])
    // stored before the forward was tried: the record is kept even though delivery failed
    assert.is(await w.rowCount(), 1)
  } finally {
    await receiver.close()
  }
})

Pipeline('undecodable entries and unknown tools go to the DLQ with clear errors while the stream keeps flowing', async ({ w }) => {
  await w.redis.xadd(w.keys.stream, '*', 'event', '{"id": broken')
  await w.enqueue(1, { tool_id: 'nobody' })
  await w.enqueue(5)
  w.start()
  await eventually('7 settled', () => w.settled.length === 7)
  assert.is(await w.rowCount(), 5)
  const dlq = await w.db.db.selectFrom('webhook_dlq').selectAll().orderBy('id').execute()
  assert.equal(dlq.map((d) => [d.error_code, d.status]), [['UNDECODABLE_ENTRY', 'failed'], ['UNKNOWN_TOOL', 'pending']])
  assert.match(dlq[0]!.error, /not valid JSON/)
  assert.equal((dlq[0]!.event as { fields: unknown }).fields, { event: '{"id": broken' })
  assert.match(dlq[1]!.error, /tool "nobody", which is not configured/)
  await eventually('acked', async () => (await w.pending()) === 0)
})

Pipeline('an entry delivered more than maxDeliveries times is dead-lettered as poison before any step runs', async ({ w }) => {
  const [event] = await w.enqueue(1)
  await w.stream.ensureGroup(w.keys.group)
  const [[, [[id]]]] = (await w.redis.xreadgroup('GROUP', w.keys.group, 'crashy', 'COUNT', 1, 'STREAMS', w.keys.stream, '>')) as unknown as [[string, [[string]]]]
  for (let i = 0; i < 3; i++) await w.redis.xclaim(w.keys.stream, w.keys.group, 'crashy', 0, id)
  w.start({ maxDeliveries: 3, claimIdleMs: 100 })
  await eventually('settled', () => w.settled.length === 1)
  const dlq = await w.db.db.selectFrom('webhook_dlq').selectAll().executeTakeFirstOrThrow()
  assert.equal([dlq.event_id, dlq.error_code, dlq.error_class, dlq.status], [event!.id, 'POISON', 'poison', 'failed'])
  assert.is(await w.rowCount(), 0)
})

Pipeline('a re-queued event that fails again updates its open DLQ row and keeps its retry count', async ({ w }) => {
  const event = makeEvent({ tool_id: 'nobody' })
  await w.stream.add(event)
  w.start()
  await eventually('first failure', () => w.settled.length === 1)
  await w.db.db.updateTable('webhook_dlq').set({ status: 'retrying' }).execute()
  await w.stream.add({ ...event, retry_count: 1 })
  await eventually('second failure', () => w.settled.length === 2)
  const rows = await w.db.db.selectFrom('webhook_dlq').selectAll().execute()
  assert.equal(rows.map((r) => [r.status, r.retry_count]), [['pending', 1]])
})

Pipeline('a re-queued event that is stored resolves its DLQ entry, with an audit row', async ({ w }) => {
  const event = makeEvent({ tool_id: 'later' })
  await w.stream.add(event)
  w.start()
  await eventually('dead-lettered', () => w.settled.length === 1)
  await w.db.db.updateTable('webhook_dlq').set({ status: 'retrying' }).execute()
  w.addTool({ id: 'later', provider: 'github' })
  await w.stream.add({ ...event, retry_count: 1 })
  await eventually('stored', () => w.settled.length === 2)
  assert.is(w.settled[1]!.outcome, 'stored')
  const row = await w.db.db.selectFrom('webhook_dlq').selectAll().executeTakeFirstOrThrow()
  assert.is(row.status, 'resolved')
  assert.ok(row.resolved_at)
  const audit = await w.db.db.selectFrom('webhook_audit_log').select('action').where('event_id', '=', event.id).orderBy('id').execute()
  assert.equal(audit.map((a) => a.action), ['dead_lettered', 'dlq_resolved'])
})

Pipeline('200 events for a dead destination are parked while 10,000 of another tool flow through', withTimeLimit(300_000, async ({ w }) => {
  const dead = await startReceiver(() => 503)
  try {
    w.addTool({ id: 'dead', provider: 'github', processing_mode: 'store_and_forward', forward_url: dead.url,
      retry_policy: { initial_interval: '300ms', max_interval: '2m', multiplier: 2, max_retries: 20, max_elapsed_time: '30m' } })
    await w.enqueue(200, { tool_id: 'dead' })
    const deadIds = await w.redis.xrange(w.stream.stream, '-', '+', 'COUNT', 200)
    await w.enqueue(10_000)
    w.start({ batchSize: 500, maxInlineRetryDelayMs: 1000 })
    // parked events hold no credit: once parked they are acked, so the source is free while their retries
    // wait minutes (checked on the stream, not with a stopwatch a busy box can beat)
    await eventually('200 parked', async () => Number(await w.redis.zcard(w.keys.delayed)) === 200, 60_000)
    // (the source batches its XACKs, so the last few follow the parking shortly)
    const stillPending = async () => ((await w.redis.call('XPENDING', w.stream.stream, w.keys.group, deadIds[0]![0], deadIds.at(-1)![0], 1000)) as unknown[]).length
    await eventually('every parked entry acked on the stream', async () => (await stillPending()) === 0, 30_000)
    await progressTo('10,000 stored', () => w.settled.filter((e) => e.outcome === 'stored').length, 10_000)
    await eventually('the 200 parked again', async () => Number(await w.redis.zcard(w.keys.delayed)) === 200, 10_000)
    assert.is(await w.rowCount('webhook_dlq'), 0)
    await eventually('nothing pending', async () => (await w.pending()) === 0)
  } finally {
    await dead.close()
  }
}))

Pipeline('PostgreSQL stopped mid-run and restarted: every event stored exactly once, none dead-lettered', async ({ w: shared }) => {
  const own = await startPostgres()
  const w = await pipelineWorld((await sharedRedis()).url, await own.createDatabase())
  try {
    w.addTool({ id: 'store-tool', provider: 'github' })
    const holds: boolean[] = []
    await w.enqueue(300)
    w.start({ onHold: (held) => holds.push(held) })
    await eventually('first 300', () => w.settled.length === 300)
    await own.stop()
    const events = await w.enqueue(300)
    await new Promise((r) => setTimeout(r, 1500))
    assert.is(w.settled.length, 300, 'nothing settles while PostgreSQL is down')
    await own.start()
    await eventually('600 settled', () => w.settled.length === 600, 30_000)
    assert.is(await w.rowCount(), 600)
    assert.is(await w.rowCount('webhook_dlq'), 0)
    const ids = await w.db.db.selectFrom('webhook_events').select('id').where('id', 'in', events.map((e) => e.id)).execute()
    assert.is(ids.length, 300)
    assert.ok(holds.includes(true) && holds.at(-1) === false, 'the hold was reported and released')
    void shared
  } finally {
    await w.close()
    await own.stop()
  }
})

Pipeline.run()
