import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { SourceMessage, type MessageOwner } from '../../src/sources/source-message.js'
import { toRecord } from '../../src/sources/stream-client.js'
import { makeEvent } from '../helpers/events.js'

function recordingOwner() {
  const calls: string[] = []
  const owner: MessageOwner = { settled: (id) => calls.push(`settled ${id}`), released: (id) => calls.push(`released ${id}`) }
  return { owner, calls }
}

const Message = suite('SourceMessage')

Message('settle reaches the owner once, and a nack after it does nothing (and the reverse)', () => {
  const { owner, calls } = recordingOwner()
  const a = new SourceMessage('s', '1-0', { event: JSON.stringify(makeEvent()) }, 1, owner)
  a.settle(); a.settle(); a.nack()
  const b = new SourceMessage('s', '2-0', { event: JSON.stringify(makeEvent()) }, 2, owner)
  b.nack(); b.settle()
  assert.equal(calls, ['settled 1-0', 'released 2-0'])
})

Message('the event is decoded on first use, once; an entry that cannot be decoded gets a placeholder and the error', () => {
  const { owner } = recordingOwner()
  const event = makeEvent({ tool_id: 'gh' })
  const ok = new SourceMessage('s', '1-0', toRecord(['event', JSON.stringify(event), 'traceparent', '00-ab-cd-01']), 1, owner)
  assert.is(ok.event.id, event.id)
  assert.is(ok.event, ok.event, 'decoded once, the same object after')
  assert.is(ok.decodeError, undefined)
  assert.is(ok.traceparent, '00-ab-cd-01')
  const bad = new SourceMessage('s', '3-0', { event: '{"tool_id":"gh",' }, 1, owner)
  assert.is(bad.event.id, 'undecodable:3-0')
  assert.is(bad.decodeError?.code, 'UNDECODABLE_ENTRY')
  assert.ok(bad.decodeError?.message.includes('stream s, entry 3-0'), bad.decodeError?.message)
  assert.not.ok('traceparent' in bad, 'no traceparent field, no property')
})

Message.run()
