/**
 * Baseline: the least code that does ingest's work for a GitHub webhook, hand-written on node:http and ioredis
 * (the same client hookstream uses, with auto-pipelining). Per request: read the body, check
 * `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, constant-time compare), `JSON.parse` it (a body that is
 * not JSON gets 400), then one script that remembers the delivery id for 24 h (`SET NX EX`) and, when it is
 * new, XADDs the entry in hookstream's v2 form (header fields, raw payload text last); answer 202 with the
 * event id and stream id. No tool lookup, no size or depth limits, no in-flight budget, no metrics: the
 * work any correct receiver must do, and nothing else. Its ratio to bare-http is the most any ingest can
 * reach on the box; ingest's ratio to it is what hookstream's checks and bookkeeping cost.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { defineScenario } from '../define-scenario.js'
import { cleanup, load, SECRET, writeBodies } from '../scenarios/ingest.js'

const ADD_ONCE = `if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then
  return redis.call('XADD', KEYS[2], '*', unpack(ARGV))
end
return false`

export const minimalIngest = defineScenario({
  name: 'minimal-ingest',
  description: 'baseline: hand-written node:http + ioredis receiver: HMAC check, JSON.parse, SET NX + XADD in one script, 202',
  isBaseline: true,
  unit: 'req/s',
  events: 20_000,
  async setup(ctx) {
    ctx.state.bodiesFile = await writeBodies(ctx)
    const redis = ctx.redis.duplicate({ enableAutoPipelining: true })
    redis.defineCommand('addOnce', { numberOfKeys: 2, lua: ADD_ONCE })
    const addOnce = (redis as unknown as { addOnce: (...args: string[]) => Promise<string | null> }).addOnce.bind(redis)
    const stream = ctx.keys.stream
    const seenPrefix = `${ctx.keyPrefix}seen:`
    const answer = (res: ServerResponse, status: number, body: string) =>
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks)
        const given = Buffer.from(String(req.headers['x-hub-signature-256'] ?? '').replace(/^sha256=/, ''), 'hex')
        const expected = createHmac('sha256', SECRET).update(body).digest()
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) return answer(res, 401, '{"error":"signature"}')
        const text = body.toString('utf8')
        let payload: { repository?: { full_name?: string } }
        try { payload = JSON.parse(text) } catch { return answer(res, 400, '{"error":"json"}') }
        const id = String(req.headers['x-github-delivery'] ?? randomUUID())
        const event = String(req.headers['x-github-event'] ?? 'unknown')
        addOnce(`${seenPrefix}${id}`, stream,
          'id', id, 'tool_id', 'bench-gh', 'event_type', `webhook.github.${event}`, 'tenant_id', 'default',
          'repository', payload.repository?.full_name ?? '', 'timestamp', new Date().toISOString(), 'retry_count', '0',
          'payload', text,
        ).then((streamId) => answer(res, 202, streamId === null ? `{"id":"${id}","duplicate":true}` : `{"id":"${id}","stream_id":"${streamId}"}`),
          () => answer(res, 503, '{"error":"redis"}'))
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    ctx.state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    ctx.state.close = async () => {
      await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections() })
      redis.disconnect()
    }
  },
  async run(ctx) {
    const result = await load(ctx, ctx.state.url as string)
    const length = (await ctx.redis.call('XLEN', ctx.keys.stream)) as number
    if (length !== ctx.events) throw new Error(`minimal-ingest: the stream holds ${length} entries, expected ${ctx.events}`)
    return result
  },
  teardown: cleanup,
})
