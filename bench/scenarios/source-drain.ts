import { defineScenario, type Scenario } from '../define-scenario.js'
import { drainSource } from './drain-source.js'

function sourceDrain(name: string, batchSize: number, batches = false): Scenario {
  return defineScenario({
    name,
    description: batches
      ? `fromRedisStreamBatches (batchSize ${batchSize}, the pipelines' source) + settle each batch at once, no work`
      : `fromRedisStream (batchSize ${batchSize}) + settle at once, no work`,
    baseline: ['raw-drain', 'raw-drain-decode'],
    ...(batches ? { targetRatio: 0.9 } : batchSize === 500 ? { targetRatio: 0.8 } : {}),
    events: 25_000,
    setup: (ctx) => ctx.preload(),
    async run(ctx) {
      const { settled, drained } = await drainSource({
        redis: ctx.redis, stream: ctx.keys.stream, group: ctx.group, events: ctx.events, batchSize, batches, onProgress: ctx.progress,
      })
      const pending = ((await ctx.redis.call('XPENDING', ctx.keys.stream, ctx.group)) as [number])[0]
      if (!drained || pending !== 0) throw new Error(`${name}: ${pending} entries still pending after the drain`)
      return { events: settled }
    },
  })
}

/** Scenario (2), source drain: the source's own cost next to the raw XREADGROUP loop (target ≥ 0.8×). */
export const sourceDrain500 = sourceDrain('source-drain', 500)
/** The same with fromRedisStream's default batchSize (100), to show what the batch size buys. */
export const sourceDrain100 = sourceDrain('source-drain-b100', 100)
/** The pipelines' source (#17): each read is one batch, settled at once (target ≥ 0.9× the raw loop). */
export const sourceDrainBatches = sourceDrain('source-drain-batches', 500, true)
