import { CompiledQuery, sql, type Kysely } from 'kysely'
import type { Database } from '../../src/db/database.js'
import { parseEventSearch } from '../../src/db/event-search-filter.js'
import { searchEventsQuery } from '../../src/db/event-search.js'

/** The generated tools that forward (passed as the config file's store_and_forward tools). */
export const FORWARDING_TOOLS: readonly string[] = ['tool-0', 'tool-1']

const TYPES = ['push', 'pull_request', 'pull_request_review', 'pull_request_review_comment', 'issues', 'issue_comment', 'check_run',
  'check_suite', 'workflow_run', 'workflow_job', 'create', 'delete', 'release', 'deployment', 'deployment_status', 'status', 'star',
  'fork', 'member', 'label']

/**
 * Fills `webhook_events` with `rows` events (8 tools and tenants, 20 GitHub event types, one a second back from
 * 2026-03-01, the forwarding tools' events forwarded but 1 in 25), dead-letters every 1000th (pending,
 * retrying, failed in turn) plus `rows / 1000` events never stored, in chunks of 500,000, then ANALYZEs.
 */
export async function generateSearchData(db: Kysely<Database>, rows: number, progress?: (done: number) => void): Promise<void> {
  const types = sql`${TYPES.map((t) => `webhook.github.${t}`)}::text[]`
  for (let start = 1; start <= rows; start += 500_000) {
    const end = Math.min(rows, start + 499_999)
    await sql`INSERT INTO webhook_events (id, tool_id, tenant_id, event_type, repository, payload, stream_id, received_at, processed_at, forwarded_at)
      SELECT 'd-' || n, 'tool-' || (n % 8), 'tenant-' || (n % 8), (${types})[1 + (n / 8) % 20], 'acme/repo-' || (n % 97), '{"n":1}'::jsonb,
        n || '-0', timestamptz '2026-03-01T00:00:00Z' - make_interval(secs => n), timestamptz '2026-03-01T00:00:00Z' - make_interval(secs => n),
        CASE WHEN n % 8 < 2 AND n % 25 <> 1 THEN timestamptz '2026-03-01T00:00:01Z' - make_interval(secs => n) END
      FROM generate_series(${start}::int, ${end}::int) AS n`.execute(db)
    progress?.(end)
  }
  await sql`INSERT INTO webhook_dlq (event_id, tool_id, event, error, error_class, status, failed_at)
    SELECT 'd-' || n, 'tool-' || (n % 8), jsonb_build_object('id', 'd-' || n, 'tool_id', 'tool-' || (n % 8), 'tenant_id', 'tenant-' || (n % 8),
        'event_type', 'webhook.github.push'), 'HTTP 500', 'transient', (ARRAY['pending', 'retrying', 'failed'])[1 + (n / 1000) % 3],
      timestamptz '2026-03-01T00:00:00Z' - make_interval(secs => n) + interval '1 minute'
    FROM generate_series(1000, ${rows}::int, 1000) AS n`.execute(db)
  await sql`INSERT INTO webhook_dlq (event_id, tool_id, event, error, error_class, status, failed_at)
    SELECT 'never-' || n, 'tool-' || (n % 8), jsonb_build_object('id', 'never-' || n, 'tool_id', 'tool-' || (n % 8), 'tenant_id', 'tenant-' || (n % 8),
        'event_type', 'webhook.github.push'), 'transform failed', 'permanent', 'pending', timestamptz '2026-03-01T00:00:00Z' - make_interval(secs => n * 1000 + 500)
    FROM generate_series(1, ${Math.max(1, Math.floor(rows / 1000))}::int) AS n`.execute(db)
  await sql`ANALYZE webhook_events`.execute(db)
  await sql`ANALYZE webhook_dlq`.execute(db)
}

/**
 * The search shapes the plan test checks and the latency script times (query parameters of GET /admin/events):
 * each reads a bounded number of rows whatever the table's size.
 */
export const SEARCH_SHAPES: Readonly<Record<string, Record<string, string>>> = {
  'newest, no filter': {},
  'tool': { tool: 'tool-3' },
  'tool + type glob': { tool: 'tool-3', event_type: 'webhook.github.pull_request*' },
  'type glob, every tool': { event_type: 'webhook.github.pull_request*' },
  'status stored': { status: 'stored' },
  'status dead_lettered': { status: 'dead_lettered' },
  'status pending_delivery, last 6 h': { status: 'pending_delivery', from: '2026-02-28T18:00:00Z' },
  'tool + time range': { tool: 'tool-5', from: '2026-02-27T00:00:00Z', to: '2026-02-28T00:00:00Z' },
}

/**
 * Searches whose cost grows with the table: a filter that keeps no row (or very few), without a time range,
 * walks each tool's index to the end looking for a page. `status=pending_delivery` on a tool with nothing
 * pending is the same walk. The latency script times them; the README says to add `from`.
 */
export const UNBOUNDED_SHAPES: Readonly<Record<string, Record<string, string>>> = {
  'tool + a type it never sent': { tool: 'tool-3', event_type: 'webhook.gitlab.push' },
  'a repository no event has (every tool)': { repository: 'acme/none' },
}

/** What one search read, from EXPLAIN (ANALYZE, FORMAT JSON). */
export interface SearchPlan {
  /** Scan node types on webhook_events (e.g. `Index Scan`, never `Seq Scan`). */
  readonly eventScans: string[]
  /** Rows the webhook_events scans returned or filtered out, over all loops (an upper bound: see below). */
  readonly eventRowsRead: number
  /** Input rows of the largest Sort node. */
  readonly largestSort: number
  readonly ms: number
}

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Actual Rows'?: number; 'Actual Loops'?: number; 'Rows Removed by Filter'?: number; Plans?: PlanNode[] }

/** Runs one search page under EXPLAIN (ANALYZE, FORMAT JSON) and sums what it read. */
export async function explainSearch(db: Kysely<Database>, params: Record<string, string>): Promise<SearchPlan> {
  const compiled = searchEventsQuery(parseEventSearch(params), FORWARDING_TOOLS).compile(db)
  const result = await db.executeQuery<{ 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] }>(
    CompiledQuery.raw(`EXPLAIN (ANALYZE, FORMAT JSON) ${compiled.sql}`, [...compiled.parameters]))
  const [top] = (result.rows[0] as { 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] })['QUERY PLAN']
  const out = { eventScans: [] as string[], eventRowsRead: 0, largestSort: 0, ms: top['Execution Time'] }
  const walk = (node: PlanNode) => {
    const loops = node['Actual Loops'] ?? 1
    if (node['Relation Name'] === 'webhook_events') {
      out.eventScans.push(node['Node Type'])
      // per-loop counts are rounded averages (a probe that finds 0.6 rows shows 0): count one more per loop
      out.eventRowsRead += ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (loops > 1 ? 1 : 0)) * loops
    }
    if (node['Node Type'] === 'Sort' || node['Node Type'] === 'Incremental Sort') {
      const input = node.Plans?.[0]
      out.largestSort = Math.max(out.largestSort, (input?.['Actual Rows'] ?? 0) * (input?.['Actual Loops'] ?? 1))
    }
    for (const child of node.Plans ?? []) walk(child)
  }
  walk(top.Plan)
  return out
}
