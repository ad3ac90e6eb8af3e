import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sql } from 'kysely'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { searchEvents } from '../../src/db/event-search.js'
import { parseEventSearch } from '../../src/db/event-search-filter.js'
import { explainSearch, FORWARDING_TOOLS, generateSearchData, SEARCH_SHAPES, UNBOUNDED_SHAPES } from '../helpers/event-search-data.js'
import { sharedPostgres } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const ROWS = 300_000
// 8 tools × 51 rows (a page of 50 and one more) is 408 index entries; filters that keep 1 row in 7 need ~7×
const MAX_ROWS_READ = 5_000

const Plans = suite<{ handle: Db }>('event search query plans', {} as { handle: Db })
Plans.before(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 2 })
  await migrateToLatest(ctx.handle.db)
  await generateSearchData(ctx.handle.db, ROWS)
})
Plans.after((ctx) => release(ctx, { handle: (h) => h.close() }))

for (const [shape, params] of Object.entries(SEARCH_SHAPES)) {
  Plans(`"${shape}" reads the newest page through an index, never the whole ${ROWS.toLocaleString('en')}-row table`, async ({ handle }) => {
    const page = await searchEvents(handle.db, parseEventSearch(params), FORWARDING_TOOLS)
    assert.is(page.events.length, 50, 'a full page exists for every shape, so a bounded read is not an empty one')
    for (const withCursor of [false, true]) {
      const plan = await explainSearch(handle.db, withCursor ? { ...params, cursor: page.next_cursor as string } : params)
      const where = `${shape}${withCursor ? ', page 2' : ''}: ${JSON.stringify(plan)}`
      assert.ok(plan.eventScans.length > 0, where)
      assert.not.ok(plan.eventScans.includes('Seq Scan'), `no Seq Scan on webhook_events (${where})`)
      assert.ok(plan.eventRowsRead <= MAX_ROWS_READ, `at most ${MAX_ROWS_READ} rows of webhook_events read (${where})`)
      assert.ok(plan.largestSort <= MAX_ROWS_READ, `no Sort over more than ${MAX_ROWS_READ} rows (${where})`)
    }
  })
}

Plans('a search that runs past its time limit is stopped with EVENT_SEARCH_TIMEOUT and tells how to narrow it', async ({ handle }) => {
  const broad = parseEventSearch(UNBOUNDED_SHAPES['a repository no event has (every tool)'] as Record<string, string>)
  try {
    await searchEvents(handle.db, broad, FORWARDING_TOOLS, 1) // 1 ms: reading 300,000 rows cannot finish in it
    assert.unreachable('the search should have been stopped')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'EVENT_SEARCH_TIMEOUT')
    assert.match((err as Error).message, 'ran longer than 1 ms and was stopped; narrow it with a time range ("from", "to") and a tool')
  }
  // the limit is per search: the connection goes back without it, and the next search runs normally
  assert.is((await searchEvents(handle.db, parseEventSearch({ tool: 'tool-0' }), FORWARDING_TOOLS, 1000)).events.length, 50)
  // neither pooled connection kept a search's 1 s limit (SET LOCAL ends with the search's transaction)
  await Promise.all([0, 1].map(() => sql`SELECT pg_sleep(1.1)`.execute(handle.db)))
})

Plans('negative control: a filter no event matches walks every row, so the bound above can fail', async ({ handle }) => {
  const plan = await explainSearch(handle.db, UNBOUNDED_SHAPES['a repository no event has (every tool)'] as Record<string, string>)
  assert.ok(plan.eventRowsRead >= ROWS, JSON.stringify(plan))
})

Plans.run()
