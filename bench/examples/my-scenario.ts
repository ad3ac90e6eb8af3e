/**
 * A user scenario: your own operator chain on the bench's data, compared with the raw drain loops.
 *
 *   npm run bench -- --file bench/examples/my-scenario.ts
 */
import { map, mergeMap } from 'rxjs'
import { defineScenario } from '../define-scenario.js'

export default defineScenario({
  name: 'my-enrich-drain',
  description: 'fromRedisStream → add a field → async no-op step (16 in flight) → settle',
  baseline: ['raw-drain-decode', 'raw-drain'],
  events: 20_000,
  setup: (ctx) => ctx.preload(),
  async run(ctx) {
    const { settled } = await ctx.drain({
      chain: (source) => source.pipe(
        map((msg) => ({ msg, repoLength: msg.event.repository.length })),
        mergeMap(async (x) => { await Promise.resolve(); x.msg.settle(); return x }, 16),
      ),
    })
    return { events: settled }
  },
})
