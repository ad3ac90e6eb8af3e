import { entriesOfReadReply } from '../../src/sources/stream-client.js'
import { defineScenario, type Scenario } from '../define-scenario.js'
import { entryRow } from './insert-rows.js'

function rawLoop(name: string, decode: boolean): Scenario {
  return defineScenario({
    name,
    description: decode
      ? 'baseline: the same loop plus decoding each entry\'s header (payload left raw: the least any consumer does)'
      : 'baseline: XREADGROUP COUNT 500 + one XACK per batch, no work',
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
          if (decode) for (const [id, fields] of entries) entryRow(id, fields)
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
}

/** Baseline: XREADGROUP COUNT 500 + one XACK per batch, no work at all. The ceiling of any Redis Streams consumer. */
export const rawDrain = rawLoop('raw-drain', false)
/** Baseline: the raw loop plus decoding each entry's header, to tell decoding cost from the source's own overhead. */
export const rawDrainDecode = rawLoop('raw-drain-decode', true)
