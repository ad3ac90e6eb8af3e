/**
 * Latency of `GET /admin/events`'s query on a large generated table: every shape of SEARCH_SHAPES (bounded)
 * and UNBOUNDED_SHAPES (filters that keep almost nothing), page 1 and the page after it, with the rows of
 * webhook_events each read (EXPLAIN ANALYZE); the unbounded shapes run 3 times only (each reads the table).
 * Starts its own PostgreSQL unless DATABASE_URL is set.
 *
 *   npx tsx bench/event-search.ts [rows=3000000] [repeat=20]
 */
import { performance } from 'node:perf_hooks'
import { createDb } from '../src/db/database.js'
import { parseEventSearch } from '../src/db/event-search-filter.js'
import { searchEvents } from '../src/db/event-search.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { explainSearch, FORWARDING_TOOLS, generateSearchData, SEARCH_SHAPES, UNBOUNDED_SHAPES } from '../test/helpers/event-search-data.js'
import { startPostgres } from '../test/helpers/servers.js'
import { median } from './stats.js'

const rows = Number(process.argv[2] ?? 3_000_000)
const repeat = Number(process.argv[3] ?? 20)
const pg = process.env.DATABASE_URL ? undefined : await startPostgres()
const handle = await createDb({ url: process.env.DATABASE_URL ?? await pg!.createDatabase(), poolSize: 2 })
try {
  await migrateToLatest(handle.db)
  const started = performance.now()
  await generateSearchData(handle.db, rows, (n) => process.stderr.write(`\rgenerated ${n.toLocaleString('en')} rows`))
  process.stderr.write(` in ${((performance.now() - started) / 1000).toFixed(0)} s\n`)
  const time = async (params: Record<string, string>, runs: number) => {
    const ms: number[] = []
    for (let i = 0; i < runs + 2; i++) {
      const t0 = performance.now()
      await searchEvents(handle.db, parseEventSearch(params), FORWARDING_TOOLS)
      if (i >= 2) ms.push(performance.now() - t0)
    }
    ms.sort((a, b) => a - b)
    return `${median(ms).toFixed(1)} / ${(ms[Math.ceil(ms.length * 0.95) - 1] as number).toFixed(1)}`
  }
  console.log(`${rows.toLocaleString('en')} events, 8 tools; page of 50; ms p50 / p95 over ${repeat} runs (unbounded: 3); rows of webhook_events read (EXPLAIN ANALYZE)\n`)
  console.log('| shape | page 1 ms | rows read | page 2 ms | rows read |\n|---|--:|--:|--:|--:|')
  const shapes = [...Object.entries(SEARCH_SHAPES).map(([s, p]) => [s, p, repeat] as const), ...Object.entries(UNBOUNDED_SHAPES).map(([s, p]) => [`${s} (unbounded)`, p, 3] as const)]
  for (const [shape, params, runs] of shapes) {
    const first = await searchEvents(handle.db, parseEventSearch(params), FORWARDING_TOOLS)
    const next = first.next_cursor ? { ...params, cursor: first.next_cursor } : undefined
    const cells = [await time(params, runs), (await explainSearch(handle.db, params)).eventRowsRead.toLocaleString('en')]
    cells.push(...(next ? [await time(next, runs), (await explainSearch(handle.db, next)).eventRowsRead.toLocaleString('en')] : ['–', '–']))
    console.log(`| ${shape} | ${cells.join(' | ')} |`)
  }
} finally {
  await handle.close()
  await pg?.stop()
}
