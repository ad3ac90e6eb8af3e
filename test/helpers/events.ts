import { randomUUID } from 'node:crypto'
import type { StreamEvent } from '../../src/core/event.js'
import { decodeEntry } from '../../src/core/stream-entry.js'

/** A valid StreamEvent with a fresh id; override any field. */
export function makeEvent(overrides: Partial<StreamEvent> = {}): StreamEvent {
  return {
    id: randomUUID(),
    event_type: 'webhook.github.push',
    repository: 'acme/api',
    tenant_id: 'acme',
    tool_id: 'gh-main',
    payload: { ref: 'refs/heads/main', n: Math.floor(Math.random() * 1000) },
    timestamp: new Date().toISOString(),
    retry_count: 0,
    ...overrides,
  }
}

/** Resolves when `check` returns true, polling every 20 ms; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * Waits until `count()` reaches `target`, failing only when it stops moving for `stallMs` (default 30 s): a
 * throughput test on a busy machine then fails when the pipeline is stuck, not when the box is slow. The
 * test's own time limit (test/run.cjs, `withTimeLimit`) still bounds the whole wait.
 *
 * @example
 * await progressTo('10,000 stored', () => rowCount(db), 10_000)
 */
export async function progressTo(what: string, count: () => number | Promise<number>, target: number, stallMs = 30_000): Promise<void> {
  let last = -1
  let movedAt = Date.now()
  for (;;) {
    const now = await count()
    if (now >= target) return
    if (now !== last) { last = now; movedAt = Date.now() }
    if (Date.now() - movedAt > stallMs) throw new Error(`stuck at ${now} of ${target} for ${stallMs} ms waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A stream entry's field list (`[name, value, …]` as XRANGE returns it) as a record. */
export function entryRecord(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i] as string] = list[i + 1] as string
  return out
}

/** The StreamEvent of an entry's field list in either format, as a plain object (lazy fields read). */
export function entryEvent(list: readonly string[]): StreamEvent {
  return { ...decodeEntry(entryRecord(list)) }
}
