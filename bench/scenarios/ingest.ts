import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sign } from '@octokit/webhooks-methods'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createIngestHandler } from '../../src/http/ingest.js'
import { createRouter, startHttpServer } from '../../src/http/server.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { defineScenario, type ScenarioContext, type ScenarioResult } from '../define-scenario.js'
import { makeEvents } from '../payloads.js'
import { runChild } from '../run-child.js'

export const SECRET = 'bench-secret'
const CONNECTIONS = 32

interface LoadResult { total: number; seconds: number; p50Ms: number; p99Ms: number; non2xx: number; errors: number; timeouts: number }

/** Every distinct body of the payload set, signed once up front, in a temp file (removed by `cleanup`). */
export async function writeBodies(ctx: ScenarioContext): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-bench-'))
  const distinct = makeEvents(ctx.payload, Math.min(ctx.events, ctx.payload === 'github' ? 329 : 1), 'b-')
  const bodies = await Promise.all(distinct.map(async (e) => {
    const body = JSON.stringify(e.payload)
    return { event: e.event_type.split('.').slice(2).join('.') || 'bench', body, signature: await sign(SECRET, body) }
  }))
  const file = join(dir, 'bodies.json')
  writeFileSync(file, JSON.stringify(bodies))
  ctx.state.bodiesDir = dir
  return file
}

export async function load(ctx: ScenarioContext, url: string): Promise<ScenarioResult> {
  const out = await runChild<LoadResult>(new URL('./ingest-load-child.ts', import.meta.url), {
    url, path: '/webhooks/bench-gh', bodiesFile: ctx.state.bodiesFile, amount: ctx.events, connections: CONNECTIONS,
    idPrefix: `${ctx.keyPrefix}d-`,
  }, ctx.progress)
  if (out.non2xx > 0 || out.errors > 0) throw new Error(`load: ${out.non2xx} non-2xx answers and ${out.errors} errors out of ${out.total}`)
  return { events: out.total, seconds: out.seconds, extra: { p50Ms: out.p50Ms, p99Ms: out.p99Ms, connections: CONNECTIONS } }
}

/** Closes what setup started and removes the bodies file. */
export async function cleanup(ctx: ScenarioContext): Promise<void> {
  await (ctx.state.close as (() => Promise<void>) | undefined)?.()
  if (typeof ctx.state.bodiesDir === 'string') rmSync(ctx.state.bodiesDir, { recursive: true, force: true })
}

/** Baseline: a bare node:http server that drains the body and answers 202, under the same load. */
export const bareHttp = defineScenario({
  name: 'bare-http',
  description: 'baseline: bare node:http server answering 202, doing nothing (autocannon in a child process)',
  isBaseline: true,
  unit: 'req/s',
  events: 20_000,
  async setup(ctx) {
    ctx.state.bodiesFile = await writeBodies(ctx)
    const server: Server = createServer((req, res) => {
      req.resume()
      req.on('end', () => { res.writeHead(202); res.end() })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    ctx.state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    ctx.state.close = () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections() })
  },
  run: (ctx) => load(ctx, ctx.state.url as string),
  teardown: cleanup,
})

/**
 * Scenario (3), ingest: POST /webhooks/:tool with GitHub signature verification, delivery-id check and XADD,
 * next to the bare server (target ≥ 0.6×, #17) and to the least hand-written code doing the same work
 * (bench/baselines/minimal-ingest.ts).
 */
export const ingest = defineScenario({
  name: 'ingest',
  description: 'POST /webhooks/:tool: verify GitHub signature, delivery check, XADD (autocannon in a child process)',
  baseline: ['bare-http', 'minimal-ingest'],
  targetRatio: 0.6,
  unit: 'req/s',
  events: 20_000,
  async setup(ctx) {
    ctx.state.bodiesFile = await writeBodies(ctx)
    const tool: ToolConfig = parseTool({ id: 'bench-gh', provider: 'github', secret: SECRET })
    const tools = new Map([[tool.id, tool]])
    // a connection of its own with auto-pipelining, as `hookstream run` gives ingest (src/service/ingest.ts)
    const redis = ctx.redis.duplicate({ enableAutoPipelining: true })
    const handler = createIngestHandler({
      tools: { get: async (id) => tools.get(id) },
      stream: new StreamClient({ redis, stream: ctx.keys.stream }),
      redis,
      keys: ctx.keys,
    })
    const http = await startHttpServer('127.0.0.1:0', createRouter([{ method: 'POST', path: '/webhooks/:toolId', handler }]))
    ctx.state.url = http.url
    ctx.state.close = async () => { await http.close(); redis.disconnect() }
  },
  async run(ctx) {
    const result = await load(ctx, ctx.state.url as string)
    const length = (await ctx.redis.call('XLEN', ctx.keys.stream)) as number
    if (length !== ctx.events) throw new Error(`ingest: the stream holds ${length} entries, expected ${ctx.events}`)
    return result
  },
  teardown: cleanup,
})
