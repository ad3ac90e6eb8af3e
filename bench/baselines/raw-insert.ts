import { defineScenario } from '../define-scenario.js'
import { countRows, insertEvents } from './insert-rows.js'

/** Baseline: 500-row `INSERT … ON CONFLICT DO NOTHING`, one after another, from memory. The ceiling of any store step. */
export const rawInsert = defineScenario({
  name: 'raw-insert',
  description: 'baseline: 500-row INSERT … ON CONFLICT DO NOTHING loop, from memory',
  isBaseline: true,
  events: 20_000,
  async setup(ctx) { ctx.data() },
  async run(ctx) {
    const all = ctx.data()
    for (let i = 0; i < all.length; i += 500) {
      await insertEvents(ctx.pool, all.slice(i, i + 500).map((event, j) => ({ event, streamId: `${i + j + 1}-0` })))
      ctx.progress(Math.min(all.length, i + 500))
    }
    const rows = await countRows(ctx.pool)
    if (rows !== all.length) throw new Error(`raw-insert: stored ${rows} rows, expected ${all.length}`)
    return { events: all.length }
  },
})
