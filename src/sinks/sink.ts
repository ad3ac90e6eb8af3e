import type { PipelineError } from '../core/errors.js'

/**
 * Where events end: PostgreSQL, an HTTP destination, or a user's own system. Every sink writes batches and
 * reports failures per item, so one bad event never fails its neighbours.
 *
 * @example
 * const failures = await sink.write(rows)
 * for (const [index, err] of failures) dead.push({ row: rows[index], err }) // err.kind says retry or DLQ
 */
export interface Sink<T> {
  /** Writes a batch; resolves with the failures by index (empty map = all durable). Rejects only with an
   *  infrastructure PipelineError when the destination system itself is unreachable. */
  write(items: readonly T[]): Promise<ReadonlyMap<number, PipelineError>>
  /** Releases what the sink holds (sockets, timers); a second call returns the same promise. */
  close(): Promise<void>
}
