import { randomUUID } from 'node:crypto'
import type { StreamEvent } from '../../src/core/event.js'

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
