import { entriesOfReadReply } from '../../src/sources/stream-client.js'
import { defineScenario } from '../define-scenario.js'

/** Baseline: XREADGROUP COUNT 500 + one XACK per batch, no work at all. The ceiling of any Redis Streams consumer. */
export const rawDrain = defineScenario({
  name: 'raw-drain',
  description: 'baseline: XREADGROUP COUNT 500 + one XACK per batch, no work',
  isBaseline: true,
  events: 25_000,
  async setup(ctx) {
    await ctx.preload()
    await ctx.redis.call('XGROUP', 'CREATE', ctx.keys.stream, ctx.group, '0')
  },
  async run(ctx) {
    const reader = ctx.redis.duplicate()
    let done = 0
    try {
      while (done < ctx.events) {
        const entries = entriesOfReadReply(await reader.call('XREADGROUP', 'GROUP', ctx.group, 'bench', 'COUNT', 500,
          'STREAMS', ctx.keys.stream, '>'))
        if (entries.length === 0) break
        await reader.call('XACK', ctx.keys.stream, ctx.group, ...entries.map(([id]) => id))
        done += entries.length
        ctx.progress(done)
      }
    } finally {
      reader.disconnect()
    }
    return { events: done }
  },
})
