import { tap } from 'rxjs'
import type { Envelope, StreamMessage } from '../core/envelope.js'
import type { BatchStage } from './batch-step.js'

/**
 * Where each message of a chain was last seen, and when: filled by `checkpoint` steps, emptied by `settle`, which
 * nacks (releases for redelivery) a message that has not been seen for its `dropTimeoutMs`, i.e. one a custom
 * operator dropped without an outcome. One ledger per chain.
 *
 * @example
 * const ledger = new CheckpointLedger()
 * batches$.pipe(checkpoint({ ledger, position: 'source' }), myStage, checkpoint({ ledger, position: 'after myStage' }),
 *   toDLQ({ db, redis }), settle({ redis, ledger, logger }))
 */
export class CheckpointLedger {
  private readonly seen = new Map<StreamMessage, { readonly position: string; readonly atMs: number }>()

  /** Records that `message` passed `position` now. */
  record(message: StreamMessage, position: string): void {
    this.seen.set(message, { position, atMs: Date.now() })
  }

  /** Stops tracking `message` (it reached settle). */
  forget(message: StreamMessage): void {
    this.seen.delete(message)
  }

  /** Removes and returns the messages last seen more than `olderThanMs` ago, with the position they were seen at. */
  expire(olderThanMs: number, nowMs = Date.now()): { readonly message: StreamMessage; readonly position: string }[] {
    const out: { message: StreamMessage; position: string }[] = []
    for (const [message, { position, atMs }] of this.seen) {
      if (nowMs - atMs <= olderThanMs) continue
      this.seen.delete(message)
      out.push({ message, position })
    }
    return out
  }

  /** Messages tracked now. */
  get size(): number {
    return this.seen.size
  }
}

/** Options of `checkpoint`. */
export interface CheckpointOptions {
  /** The chain's ledger, shared with its `settle`. */
  readonly ledger: CheckpointLedger
  /** A name for this place in the chain, e.g. `"after dedupe"` or `"step 3"`; logged when a message is lost after it. */
  readonly position: string
}

/**
 * Records in `ledger` that each envelope of the batch passed `position`, and passes the batch on unchanged. Put
 * one after each step you do not trust to keep every envelope; `settle({ ledger })` then names the last position
 * a dropped message was seen at, and releases it for redelivery instead of leaking its credit.
 *
 * @example
 * batches$.pipe(myStage(), checkpoint({ ledger, position: 'after myStage' }))
 */
export function checkpoint<E extends Envelope>(options: CheckpointOptions): BatchStage<E> {
  const { ledger, position } = options
  if (!(ledger instanceof CheckpointLedger)) throw new TypeError('checkpoint: "ledger" must be a CheckpointLedger')
  if (typeof position !== 'string' || position === '') throw new TypeError('checkpoint: "position" must be a non-empty string')
  return tap((envs) => { for (const env of envs) ledger.record(env.message, position) })
}
