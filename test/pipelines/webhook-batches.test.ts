import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { pipelineWorld, type PipelineWorld } from '../helpers/pipeline.js'

interface Ctx { w: PipelineWorld }
const Batches = suite<Ctx>('webhook pipeline: one read, one batch', {} as Ctx)

Batches.before.each(async (ctx) => {
  ctx.w = await pipelineWorld((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
})
Batches.after.each(async (ctx) => { await ctx.w.close() })

/** Counts the statements a Kysely instance runs, by kind and table ("InsertQueryNode webhook_events"). */
function statementCounter(): KyselyPlugin & { readonly counts: Map<string, number> } {
  const counts = new Map<string, number>()
  const tableOf = (node: RootOperationNode): string => {
    const n = node as { into?: { table?: { identifier?: { name?: string } } }; table?: { table?: { identifier?: { name?: string } } } }
    return n.into?.table?.identifier?.name ?? n.table?.table?.identifier?.name ?? ''
  }
  return {
    counts,
    transformQuery: (args: PluginTransformQueryArgs) => {
      const key = `${args.node.kind} ${tableOf(args.node)}`.trim()
      counts.set(key, (counts.get(key) ?? 0) + 1)
      return args.node
    },
    transformResult: async (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> => args.result,
  }
}

Batches('a read of 200 events goes through every step as one batch: one INSERT, and no statement from the steps with nothing to do', async ({ w }) => {
  w.addTool({ id: 'store-tool', provider: 'github', processing_mode: 'store' })
  await w.enqueue(200)
  const counter = statementCounter()
  // tool lookups that answer at different times: a step that re-batched on the event loop's turns would split the
  // read into several INSERTs here
  let lookups = 0
  const tools = { get: async (id: string) => {
    await new Promise((r) => setTimeout(r, (lookups++ % 5) * 3))
    return w.tools.get(id)
  } }
  w.start({ db: w.db.db.withPlugin(counter), tools, batchSize: 200, maxInFlight: 200 })
  await eventually('200 settled', () => w.settled.length === 200)
  assert.equal(w.settled.filter((e) => e.outcome === 'stored').length, 200)
  assert.equal(Object.fromEntries(counter.counts), { 'InsertQueryNode webhook_events': 1 },
    'one INSERT for the read; markForwarded, resolveDLQ and toDLQ ran no statement')
  await eventually('nothing pending', async () => (await w.pending()) === 0)
})

Batches.run()
