import { idempotencyKey } from '../../src/sources/keys.js'
import { entriesOfReadReply, type StreamEntry } from '../../src/sources/stream-client.js'
import { defineScenario, type Scenario, type ScenarioContext } from '../define-scenario.js'
import { countRows, entryRow, insertEvents } from './insert-rows.js'

const TTL_SECONDS = 86_400

// the seed service's design: per message EXISTS idempotency key → INSERT one row → SET key EX → XACK
async function handle(ctx: ScenarioContext, [id, fields]: StreamEntry): Promise<void> {
  const row = entryRow(id, fields)
  const { event } = row
  const key = idempotencyKey(ctx.keys, event.tool_id, event.id)
  if ((await ctx.redis.call('EXISTS', key)) === 0) {
    await insertEvents(ctx.pool, [row])
    await ctx.redis.call('SET', key, '1', 'EX', TTL_SECONDS)
  }
  await ctx.redis.call('XACK', ctx.keys.stream, ctx.group, id)
}

function seeds(name: string, inFlight: 1 | 10): Scenario {
  return defineScenario({
    name,
    description: `baseline: seeds' per-message design, COUNT 10, ${inFlight === 1 ? 'sequential' : '10 in flight'}`,
    isBaseline: true,
    baseline: 'raw-insert',
    events: 20_000,
    // the sequential / 10-worker variants are context, not a target's baseline: one run keeps the default bench short
    repeat: inFlight === 1 ? 1 : 3,
    async setup(ctx) {
      await ctx.preload()
      await ctx.redis.call('XGROUP', 'CREATE', ctx.keys.stream, ctx.group, '0')
    },
    async run(ctx) {
      const reader = ctx.redis.duplicate()
      let done = 0
      try {
        while (done < ctx.events) {
          const entries = entriesOfReadReply(await reader.call('XREADGROUP', 'GROUP', ctx.group, 'bench', 'COUNT', 10,
            'STREAMS', ctx.keys.stream, '>'))
          if (entries.length === 0) break
          if (inFlight === 1) for (const entry of entries) await handle(ctx, entry)
          else await Promise.all(entries.map((entry) => handle(ctx, entry)))
          done += entries.length
          ctx.progress(done)
        }
      } finally {
        reader.disconnect()
      }
      const rows = await countRows(ctx.pool)
      if (rows !== ctx.events) throw new Error(`${name}: stored ${rows} rows, expected ${ctx.events}`)
      return { events: done }
    },
  })
}

/** Baseline: the seed service's per-message consumer, one message at a time. */
export const seedsSequential = seeds('seeds-sequential', 1)
/** Baseline: the same, with the 10 messages of each read in flight at once. */
export const seedsInFlight10 = seeds('seeds-10-in-flight', 10)
