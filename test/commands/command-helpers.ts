/** Shared by the command worker tests: a fast app on its own stream, a warning collector, polling. */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { createApp, type CommandApp, type CommandAppOptions } from '../../src/commands/command-app.js'
import { PipelineError } from '../../src/core/errors.js'
import { defineWorker, type WorkerLogger } from '../../src/commands/command-worker.js'

export const FAST_RETRY = { maxRetries: 2, initialIntervalMs: 5, maxIntervalMs: 20, multiplier: 2, maxElapsedMs: 10_000 }

export interface Warnings extends WorkerLogger {
  readonly entries: { obj: Record<string, unknown>; msg: string }[]
}

export function warnings(): Warnings {
  const entries: { obj: Record<string, unknown>; msg: string }[] = []
  return { entries, warn: (obj, msg) => { entries.push({ obj, msg }) } }
}

/** An app on a fresh stream with short timeouts, so tests stay fast. */
export function testApp(redis: Redis, options: Partial<CommandAppOptions> = {}): CommandApp {
  return createApp({
    redis, stream: `test-commands-${randomUUID()}`, consumer: 'test-consumer', blockMs: 200, drainTimeoutMs: 2000,
    logger: warnings(), ...options,
  })
}

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(10)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
}

/** Pending entries of each group on `stream`, by group name. */
export async function pendingByGroup(redis: Redis, stream: string): Promise<Record<string, number>> {
  const groups = (await redis.call('XINFO', 'GROUPS', stream)) as unknown[][]
  const out: Record<string, number> = {}
  for (const g of groups) {
    const rec: Record<string, unknown> = {}
    for (let i = 0; i + 1 < g.length; i += 2) rec[String(g[i])] = g[i + 1]
    out[String(rec.name)] = Number(rec.pending)
  }
  return out
}

/** The DLQ entries of `dlqStream` as field records. */
export async function deadLetters(redis: Redis, dlqStream: string): Promise<Record<string, string>[]> {
  const entries = (await redis.call('XRANGE', dlqStream, '-', '+')) as [string, string[]][]
  return entries.map(([, fields]) => {
    const rec: Record<string, string> = {}
    for (let i = 0; i + 1 < fields.length; i += 2) rec[fields[i] as string] = fields[i + 1] as string
    return rec
  })
}

/**
 * Runs an app on `stream` with workers "billing" (fails "charge" permanently while `broken.on`) and "audit"
 * (counts every "charge"), executes `count` charges, waits until billing dead-lettered them all, and leaves the
 * app running; stop it with `app.stop()`.
 */
export async function appWithDeadLetters(redis: Redis, stream: string, count: number) {
  const broken = { on: true }
  const seen = { billing: [] as number[], audit: [] as number[] }
  const app = createApp({ redis, stream, consumer: 'c1', blockMs: 100, drainTimeoutMs: 2000, logger: warnings() })
  await app.register(
    defineWorker({ name: 'billing', description: 'charges', commands: { charge: ({ payload }) => {
      if (broken.on) throw new PipelineError('permanent', 'CARD_DECLINED', 'the card was declined')
      seen.billing.push((payload as { n: number }).n)
    } } }),
    defineWorker({ name: 'audit', description: 'counts', commands: { charge: ({ payload }) => { seen.audit.push((payload as { n: number }).n) } } }),
  )
  await app.start()
  for (let n = 1; n <= count; n++) await app.execute('charge', { n })
  await waitUntil(`${count} dead letters`, () => app.info()[0]?.failed === count && app.info()[1]?.handled === count)
  return { app, broken, seen }
}
