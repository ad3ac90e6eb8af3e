import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decodeEntry, entryEventJson, entryFields, entryPayloadJson } from '../../src/core/stream-entry.js'
import { entryRecord, makeEvent } from '../helpers/events.js'

const asRecord = (list: readonly (string | Buffer)[]) => entryRecord(list.map(String))

test('a v2 entry decodes to the event it was built from, in either field order', () => {
  const event = makeEvent({ auth_context: { provider: 'github' }, metadata: { headers: { a: 'b' } }, retry_count: 2 })
  const list = entryFields(event)
  assert.equal({ ...decodeEntry(asRecord(list)) }, event)
  const reversed: string[] = []
  for (let i = list.length - 2; i >= 0; i -= 2) reversed.push(String(list[i]), String(list[i + 1]))
  assert.equal({ ...decodeEntry(entryRecord(reversed)) }, event)
})

test('reading the header of a v2 entry does not parse its payload; reading the payload does, once', () => {
  const fields = asRecord(entryFields(makeEvent(), '{"broken": '))
  const event = decodeEntry(fields)
  assert.equal([event.id, event.tool_id, event.retry_count], [fields.id, fields.tool_id, 0])
  assert.is(entryPayloadJson(fields), '{"broken": ')
  let thrown = 0
  for (let i = 0; i < 2; i++) {
    try { void event.payload } catch (err) { thrown++; assert.match((err as Error).message, /field "payload" is not valid JSON/) }
  }
  assert.is(thrown, 2)
})

test('a bad v2 header field fails INVALID_EVENT naming the field and where', () => {
  const good = asRecord(entryFields(makeEvent()))
  for (const [field, value, expected] of [
    ['tool_id', '', /"tool_id" must be a non-empty string/], ['retry_count', '-1', /"retry_count" must be a non-negative integer/],
    ['timestamp', 'yesterday', /"timestamp" must be an ISO 8601 date/], ['repository', undefined, /"repository" must be present/],
  ] as const) {
    const fields: Record<string, string> = { ...good }
    if (value === undefined) delete fields[field]
    else fields[field] = value
    try {
      decodeEntry(fields, 'stream s, entry 1-0')
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'INVALID_EVENT')
      assert.match((err as Error).message, expected)
      assert.match((err as Error).message, /\(stream s, entry 1-0\)$/)
    }
  }
})

test('the seeds\' entry decodes as before, a retry_count beside it wins, and it has no payload text of its own', () => {
  const event = makeEvent({ retry_count: 1 })
  const fields = { event: JSON.stringify(event), retry_count: '3' }
  assert.equal(decodeEntry(fields), { ...event, retry_count: 3 })
  assert.is(entryPayloadJson(fields), undefined)
  assert.is(entryEventJson(fields, event), undefined)
})

test('entryEventJson splices the payload text as received into the event JSON', () => {
  const text = '{"n": 12345678901234567890}'
  const event = makeEvent({ payload: JSON.parse(text) as unknown })
  const json = entryEventJson(asRecord(entryFields(event, text)), event)!
  assert.ok(json.endsWith(`"payload":${text}}`), json)
  assert.equal(JSON.parse(json), JSON.parse(JSON.stringify(event)))
})

test.run()
