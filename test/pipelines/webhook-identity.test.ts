import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DlqStore } from '../../src/db/dlq-store.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { pipelineWorld, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld }
const Identity = suite<Ctx>('webhook pipeline: event identity and dead letters', {} as Ctx)

Identity.before.each(async (ctx) => {
  const pg = await sharedPostgres()
  ctx.w = await pipelineWorld((await sharedRedis()).url, await pg.createDatabase())
  ctx.w.addTool({ id: 'tool-a', provider: 'github', processing_mode: 'store' })
  ctx.w.addTool({ id: 'tool-b', provider: 'standard', processing_mode: 'store' })
})
Identity.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Identity('two tools sending the same delivery id become two stored rows, one per tool', async ({ w }) => {
  await w.enqueue(1, { id: 'msg_0001', tool_id: 'tool-a', payload: { from: 'a' } })
  await w.enqueue(1, { id: 'msg_0001', tool_id: 'tool-b', payload: { from: 'b' } })
  w.start()
  await eventually('2 settled', () => w.settled.length === 2)
  const rows = await w.db.db.selectFrom('webhook_events').select(['id', 'tool_id', 'payload']).orderBy('tool_id').execute()
  assert.equal(rows.map((r) => [r.id, r.tool_id, r.payload]), [['msg_0001', 'tool-a', { from: 'a' }], ['msg_0001', 'tool-b', { from: 'b' }]])
  assert.equal(w.settled.map((e) => e.outcome), ['stored', 'stored'])
  assert.is(await w.rowCount('webhook_dlq'), 0)
})

Identity('the same delivery id of one tool enqueued twice is one row, the second copy a duplicate', async ({ w }) => {
  await w.enqueue(1, { id: 'msg_0002', tool_id: 'tool-a' })
  w.start()
  await eventually('first settled', () => w.settled.length === 1)
  await w.enqueue(1, { id: 'msg_0002', tool_id: 'tool-a' })
  await eventually('second settled', () => w.settled.length === 2)
  assert.is(await w.rowCount(), 1)
  assert.equal(w.settled.map((e) => e.outcome), ['stored', 'duplicate'])
})

Identity('events jsonb cannot hold, from a library producer, each end as a listed DLQ row, with their innocent batch neighbours', async ({ w }) => {
  const surrogate = makeEvent({ id: 'lone-surrogate', tool_id: 'tool-a', payload: { zen: 'lone \ud800 surrogate' } })
  const deep = makeEvent({ id: 'deep', tool_id: 'tool-a', payload: 0 })
  const deepText = JSON.stringify(deep).replace('"payload":0', `"payload":${'['.repeat(100_000)}${']'.repeat(100_000)}`)
  const unknownTool = makeEvent({ id: 'innocent', tool_id: 'no-such-tool' })
  await w.stream.addMany([surrogate])
  await w.redis.xadd(w.keys.stream, '*', 'event', deepText)
  await w.stream.addMany([unknownTool])
  w.start()
  await eventually('3 settled', () => w.settled.length === 3, 20_000)
  const rows = await w.db.db.selectFrom('webhook_dlq').select(['event_id', 'tool_id']).orderBy('event_id').execute()
  assert.equal(rows.map((r) => [r.event_id, r.tool_id]), [['deep', 'tool-a'], ['innocent', 'no-such-tool'], ['lone-surrogate', 'tool-a']])
  assert.is(await w.rowCount(), 0)
  await eventually('acked', async () => (await w.pending()) === 0)

  // shown raw, re-queued byte for byte with its new retry count beside it, and discardable
  const dlq = new DlqStore({ db: w.db.db, stream: w.stream })
  const { entries } = await dlq.list({}, { limit: 10 })
  const deepEntry = entries.find((e) => e.event_id === 'deep')!
  const shown = (await dlq.get(deepEntry.id))!
  assert.equal([shown.event_format, shown.event, shown.event_raw], ['raw', null, deepText])
  const requeued = await dlq.retryOne(deepEntry.id, 'test')
  const [[, fields]] = (await w.redis.xrange(w.keys.stream, requeued.stream_id, requeued.stream_id)) as [[string, string[]]]
  assert.equal(fields, ['event', deepText, 'retry_count', '1'])
  const surrogateEntry = entries.find((e) => e.event_id === 'lone-surrogate')!
  // kept as the producer wrote it: the header fields around the payload's text
  assert.equal(JSON.parse((await dlq.get(surrogateEntry.id))!.event_raw!), JSON.parse(JSON.stringify(surrogate)))
  assert.is((await dlq.discard(surrogateEntry.id, 'test')).status, 'discarded')
})

Identity.run()
