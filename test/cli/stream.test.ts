import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { streamCommand } from '../../src/cli/commands/stream.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { seedDlq } from '../db/dlq-seed.js'
import { makeEvent } from '../helpers/events.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const Stream = suite<{ w: CliWorld }>('hookstream stream', {} as { w: CliWorld })
Stream.before.each(async (ctx) => { ctx.w = await cliWorld() })
Stream.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Stream('info reports length, ids, group pending and lag, consumers, the DLQ stream and DLQ rows by status', async ({ w }) => {
  const stream = new StreamClient({ redis: w.redis, stream: w.keys.stream })
  await stream.ensureGroup(w.keys.group)
  const ids = await stream.addMany(Array.from({ length: 5 }, () => makeEvent()))
  await w.redis.call('XREADGROUP', 'GROUP', w.keys.group, 'c1', 'COUNT', 2, 'STREAMS', w.keys.stream, '>')
  await w.redis.xadd(w.keys.dlqStream, '*', 'event', '{}')
  await seedDlq(w.db, [{}, {}, { status: 'failed' }])
  const r = await w.run(streamCommand, ['info'], { json: true })
  assert.is(r.code, 0, r.err)
  const info = JSON.parse(r.out)
  assert.equal([info.stream, info.length, info.firstId, info.lastId], [w.keys.stream, 5, ids[0], ids[4]])
  const [group] = info.groups
  assert.equal([group.name, group.pending, group.lag, group.lastDeliveredId], [w.keys.group, 2, 3, ids[1]])
  assert.equal(group.consumers.map((c: { name: string; pending: number }) => [c.name, c.pending]), [['c1', 2]])
  assert.equal(info.dlq_stream, { stream: w.keys.dlqStream, length: 1 })
  assert.equal(info.dlq_rows, { pending: 2, retrying: 0, resolved: 0, failed: 1, discarded: 0 })
  assert.is(info.delayed_retries, 0)
  const human = await w.run(streamCommand, ['info'])
  assert.match(human.out, /length:\s+5/)
  assert.match(human.out, /GROUP\s+PENDING\s+LAG/)
  assert.match(human.out, /c1\s+2\s+\d+s/)
  assert.match(human.out, /dlq_stream_length:\s+1/)
})

Stream('an empty key-space reads as an empty stream; a wrong subcommand exits 2 (usage)', async ({ w }) => {
  const info = JSON.parse((await w.run(streamCommand, ['info'], { json: true })).out)
  assert.equal([info.length, info.firstId, info.groups, info.dlq_stream.length], [0, null, [], 0])
  const bad = await w.run(streamCommand, ['stats'])
  assert.is(bad.code, 2)
  assert.match(bad.err, /usage: hookstream stream info/)
})

Stream.run()
