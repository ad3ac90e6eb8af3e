// Run by transform.test.ts in its own process: a transform that outgrows the evaluator's heap with time to spare,
// then an ordinary one. Prints the two outcomes as JSON; the process exiting 0 shows the first took nothing down.
import { from, lastValueFrom, toArray } from 'rxjs'
import { parseTool } from '../../src/core/tool.js'
import { transform } from '../../src/operators/transform.js'
import { asOneBatch, envelope } from './helpers.js'

const tool = (id: string, rule: string) => parseTool({ id, provider: 'github', secret: 'x', processing_mode: 'transform_and_store',
  transform: { out: rule }, transform_timeout: '10s' })
const hungry = tool('hungry', '$map([1..10000000], function($v){ $v * 2 })')
const fine = tool('fine', '$count(commits)')
const out = await lastValueFrom(from([
  { ...envelope({ tool_id: hungry.id, payload: {} }), tool: hungry },
  { ...envelope({ tool_id: fine.id, payload: { commits: [1, 2, 3] } }), tool: fine },
]).pipe(asOneBatch(transform({ pool: { workers: 1 } })), toArray()))
process.stdout.write(`${JSON.stringify(out.map((e) => ({ code: e.failure?.code ?? null, message: e.failure?.message ?? null, transformed: e.transformed ?? null })))}\n`)
