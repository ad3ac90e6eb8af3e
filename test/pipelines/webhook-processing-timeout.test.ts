import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import pg from 'pg'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, type PipelineWorld } from '../helpers/pipeline.js'
import { release } from '../helpers/release.js'

interface Ctx { w: PipelineWorld; url: string }
const Timeout = suite<Ctx>('webhook pipeline processing timeout', {} as Ctx)
Timeout.before.each(async (ctx) => {
  ctx.url = await (await sharedPostgres()).createDatabase()
  ctx.w = await pipelineWorld((await sharedRedis()).url, ctx.url)
  ctx.w.addTool({ id: 'store-tool', provider: 'github', processing_mode: 'store' })
})
Timeout.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Timeout('a store stuck behind a table lock fails its events with PROCESSING_TIMEOUT into the DLQ and acks them, instead of holding them for ever', async ({ w, url }) => {
  // another session holds webhook_events locked: every INSERT waits until it commits, which it never does here
  const locker = new pg.Client({ connectionString: url })
  await locker.connect()
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE')
  try {
    await w.enqueue(4)
    w.start({ processingTimeoutMs: 300 })
    await eventually('4 settled', () => w.settled.length === 4, 15_000)
    assert.equal(w.settled.map((e) => [e.outcome, e.failure?.code]), Array(4).fill(['dead_lettered', 'PROCESSING_TIMEOUT']))
    assert.is(w.settled[0]?.failure?.kind, 'transient')
    const rows = await w.db.db.selectFrom('webhook_dlq').select(['status', 'error_code']).execute()
    assert.equal(rows.map((r) => [r.status, r.error_code]), Array(4).fill(['pending', 'PROCESSING_TIMEOUT']))
    await eventually('nothing pending', async () => (await w.pending()) === 0)
  } finally {
    await locker.query('ROLLBACK')
    await locker.end()
  }
})

Timeout.run()
