import { filter, mergeMap, toArray, type OperatorFunction } from 'rxjs'
import { randomUUID } from 'node:crypto'
import { toEnvelope, type Envelope, type StreamMessage } from '../../src/core/envelope.js'
import type { StreamEvent } from '../../src/core/event.js'
import { makeEvent } from '../helpers/events.js'

/** An envelope around a message that is not from Redis: `settled` counts its settle() calls. */
export function envelope(overrides: Partial<StreamEvent> = {}, message: Partial<StreamMessage> = {}): Envelope & { settled: () => number; nacked: () => number } {
  let settled = 0
  let nacked = 0
  const event = makeEvent(overrides)
  const env = toEnvelope({
    stream: 's', streamId: `${Date.now()}-${Math.floor(Math.random() * 1e6)}`, event, fields: { event: JSON.stringify(event) },
    deliveryCount: 1, readAtMs: Date.now(), settle: () => { settled += 1 }, nack: () => { nacked += 1 }, ...message,
  } as StreamMessage)
  return Object.assign(env, { settled: () => settled, nacked: () => nacked })
}

export const uniquePrefix = () => `op-${randomUUID()}:`

/**
 * Runs a batch stage on everything the source emits as one batch (nothing when the source is empty) and emits
 * its envelopes one by one again, so a test can feed envelopes and count what comes out.
 */
export function asOneBatch<A, B>(stage: OperatorFunction<readonly A[], readonly B[]>): OperatorFunction<A, B> {
  return (source) => source.pipe(toArray(), filter((envs) => envs.length > 0), stage, mergeMap((envs) => envs))
}
