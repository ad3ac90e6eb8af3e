import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql } from 'kysely'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { openSpace, toolsYaml, type Space } from './fixture.js'
import { release } from '../helpers/release.js'

const IDS = 2000
const Identity = suite<{ s: Space }>('event identity across a worker kill -9', {} as { s: Space })
Identity.before(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Identity.after((ctx) => release(ctx, { s: (s) => s.close() }))

Identity(`${IDS} delivery ids sent by two tools, one tool's copy enqueued twice, a worker killed -9 mid-run: one row per (tool, id)`, async ({ s }) => {
  const entries = Array.from({ length: IDS }, (_, i) => `d-${String(i).padStart(5, '0')}`).flatMap((id, i) => [
    makeEvent({ id, tool_id: 'tool-a', payload: { i, tool: 'a' } }),
    makeEvent({ id, tool_id: 'tool-b', payload: { i, tool: 'b' } }),
    makeEvent({ id, tool_id: 'tool-a', payload: { i, tool: 'a' } }),
  ])
  for (let i = 0; i < entries.length; i += 1500) await s.stream.addMany(entries.slice(i, i + 1500))
  const yaml = toolsYaml({ 'tool-a': undefined, 'tool-b': undefined })
  const env = { ...s.env, WORKER_CONSUMER_NAME: 'id-1', WORKER_CLAIM_IDLE: '2s', WORKER_BATCH_SIZE: '50', WORKER_BLOCK_TIMEOUT: '500ms' }
  let worker: ServiceProcess = await startServiceProcess(env, yaml, ['--role', 'worker'])
  try {
    await eventually('10% stored', async () => (await s.rows()) >= IDS * 2 * 0.1, 90_000)
    worker.child.kill('SIGKILL')
    assert.is(await worker.exited, 'SIGKILL')
    const atKill = await s.rows()
    assert.ok(atKill < IDS * 2, `the kill landed mid-run (${atKill} rows)`)
    worker = await startServiceProcess(env, yaml, ['--role', 'worker'])
    await eventually('every (tool, id) stored', async () => (await s.rows()) >= IDS * 2, 120_000)
    // the re-enqueued copies come after their originals in the stream: wait until every entry was read and acked
    await eventually('every entry read and acked', async () => {
      const info = await s.stream.info()
      const group = info.groups.find((g) => g.name === s.keys.group)
      return group?.pending === 0 && group.lag === 0
    }, 60_000)
    const { rows } = await sql<{ tool_id: string; n: number; ids: number }>`SELECT tool_id, count(*)::int AS n, count(DISTINCT id)::int AS ids
      FROM webhook_events GROUP BY tool_id ORDER BY tool_id`.execute(s.db.db)
    assert.equal(rows.map((r) => [r.tool_id, r.n, r.ids]), [['tool-a', IDS, IDS], ['tool-b', IDS, IDS]])
    const b = await s.db.db.selectFrom('webhook_events').select('payload').where('tool_id', '=', 'tool-b').where('id', '=', 'd-00007').executeTakeFirstOrThrow()
    assert.equal(b.payload, { i: 7, tool: 'b' })
    assert.is(await s.rows('webhook_dlq'), 0)
  } finally {
    worker.child.kill('SIGTERM')
    await worker.exited
  }
})

Identity.run()
