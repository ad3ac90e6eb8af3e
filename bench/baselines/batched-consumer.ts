import type { Redis } from 'ioredis'
import { idempotencyKey } from '../../src/sources/keys.js'
import { entriesOfReadReply } from '../../src/sources/stream-client.js'
import { defineScenario, type Scenario, type ScenarioContext } from '../define-scenario.js'
import { countRows, entryRow, insertEvents } from './insert-rows.js'

const TTL_SECONDS = 86_400

// one loop: COUNT 500 → one MGET of idempotency keys → one multi-row INSERT → pipelined SET EX + one XACK
async function consume(ctx: ScenarioContext, reader: Redis, consumer: string, counter: { done: number }): Promise<void> {
  for (;;) {
    const entries = entriesOfReadReply(await reader.call('XREADGROUP', 'GROUP', ctx.group, consumer, 'COUNT', 500,
      'STREAMS', ctx.keys.stream, '>'))
    if (entries.length === 0) return
    const rows = entries.map(([streamId, fields]) => entryRow(streamId, fields))
    const keys = rows.map((r) => idempotencyKey(ctx.keys, r.event.tool_id, r.event.id))
    const seen = (await ctx.redis.call('MGET', ...keys)) as (string | null)[]
    const fresh = rows.filter((_, i) => seen[i] === null)
    await insertEvents(ctx.pool, fresh)
    const pipe = ctx.redis.pipeline()
    for (const r of fresh) pipe.call('SET', idempotencyKey(ctx.keys, r.event.tool_id, r.event.id), '1', 'EX', TTL_SECONDS)
    pipe.call('XACK', ctx.keys.stream, ctx.group, ...entries.map(([id]) => id))
    await pipe.exec()
    counter.done += entries.length
    ctx.progress(counter.done)
  }
}

function batched(name: string, batchesInFlight: 1 | 2): Scenario {
  return defineScenario({
    name,
    description: `baseline: hand-written batched consumer, COUNT 500, ${batchesInFlight} batch${batchesInFlight > 1 ? 'es' : ''} in flight`,
    isBaseline: true,
    baseline: 'raw-insert',
    events: 20_000,
    async setup(ctx) {
      await ctx.preload()
      await ctx.redis.call('XGROUP', 'CREATE', ctx.keys.stream, ctx.group, '0')
    },
    async run(ctx) {
      const counter = { done: 0 }
      const readers = Array.from({ length: batchesInFlight }, () => ctx.redis.duplicate())
      try {
        await Promise.all(readers.map((reader, i) => consume(ctx, reader, `bench-${i}`, counter)))
      } finally {
        for (const r of readers) r.disconnect()
      }
      const rows = await countRows(ctx.pool)
      if (rows !== ctx.events) throw new Error(`${name}: stored ${rows} rows, expected ${ctx.events}`)
      return { events: counter.done }
    },
  })
}

/** Baseline: a plain hand-written batched consumer, one batch in flight. */
export const batchedConsumer1 = batched('batched-consumer-1', 1)
/** Baseline: the same with two batches in flight (two readers in the group). */
export const batchedConsumer2 = batched('batched-consumer-2', 2)
