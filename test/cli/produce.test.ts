import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { produceCommand } from '../../src/cli/commands/produce.js'

import { entryEvent } from '../helpers/events.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const dir = mkdtempSync(join(tmpdir(), 'hookstream-produce-'))
const Produce = suite<{ w: CliWorld }>('hookstream produce', {} as { w: CliWorld })
Produce.before.each(async (ctx) => { ctx.w = await cliWorld() })
Produce.after.each((ctx) => release(ctx, { w: (w) => w.close() }))
Produce.after(() => rmSync(dir, { recursive: true, force: true }))

function file(lines: unknown[]): string {
  const path = join(dir, `events-${Math.random()}.ndjson`)
  writeFileSync(path, lines.map((l) => JSON.stringify(l)).join('\n'))
  return path
}

Produce('enqueues one completed event per line, with the defaults createProducer also fills in', async ({ w }) => {
  const r = await w.run(produceCommand, [], { file: file([
    { event_type: 'billing.paid', tool_id: 'billing', payload: { n: 1 } },
    { id: 'inv-2', event_type: 'billing.paid', tool_id: 'billing', payload: { n: 2 }, tenant_id: 'acme' },
  ]) })
  assert.is(r.code, 0, r.err)
  assert.match(r.out, /enqueued 2 events/)
  const entries = (await w.redis.xrange(w.keys.stream, '-', '+')).map(([, fields]) => entryEvent(fields))
  assert.equal(entries.map((e) => [e.tenant_id, e.repository, e.retry_count, e.payload]), [['default', '', 0, { n: 1 }], ['acme', '', 0, { n: 2 }]])
  assert.is(entries[1]?.id, 'inv-2')
})

Produce('dedupes like ingest and createProducer: an event with its own id sent again within the window is not enqueued twice', async ({ w }) => {
  const lines = [
    { id: 'inv-9', event_type: 'billing.paid', tool_id: 'billing', payload: { n: 1 } },
    { event_type: 'billing.paid', tool_id: 'billing', payload: { n: 2 } },
  ]
  const first = await w.run(produceCommand, [], { file: file(lines) })
  assert.is(first.code, 0, first.err)
  assert.match(first.out, /^enqueued 2 events on \S+$/)
  // the same file again: inv-9 is a duplicate (nothing added), the event without an id gets a new UUID and is added
  const again = await w.run(produceCommand, [], { file: file(lines) })
  assert.is(again.code, 0, again.err)
  assert.match(again.out, /^enqueued 1 events on \S+; 1 duplicate skipped \(sent within the dedupe window\)$/)
  const json = await w.run(produceCommand, [], { file: file(lines), json: true })
  assert.equal(JSON.parse(json.out), { enqueued: 1, duplicates: 1, stream: w.keys.stream })
  const ids = (await w.redis.xrange(w.keys.stream, '-', '+')).map(([, fields]) => entryEvent(fields).id)
  assert.is(ids.length, 4)
  assert.is(ids.filter((id) => id === 'inv-9').length, 1)
})

Produce('a line whose id is not a delivery id stops the command naming the line and the field, before its chunk is enqueued', async ({ w }) => {
  const r = await w.run(produceCommand, [], { file: file([
    { event_type: 'billing.paid', tool_id: 'billing', payload: {} },
    { id: 'has a space', event_type: 'billing.paid', tool_id: 'billing', payload: {} },
  ]) })
  assert.is(r.code, 1)
  assert.match(r.err, /event field "id" must be a delivery id of 1–200 printable characters .* line 2\); 0 events were enqueued before it/)
  assert.is(Number(await w.redis.xlen(w.keys.stream)), 0)
})

Produce('a --file that cannot be opened fails with exit 1 naming the path and the reason, without a stack trace', async ({ w }) => {
  const missing = join(dir, 'missing.ndjson')
  const r = await w.run(produceCommand, [], { file: missing })
  assert.is(r.code, 1)
  assert.is(r.err, `hookstream produce: --file ${missing} cannot be read (ENOENT); check the path`)
  assert.is(Number(await w.redis.xlen(w.keys.stream)), 0)
})

Produce.run()
