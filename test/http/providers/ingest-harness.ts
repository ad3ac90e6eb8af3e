/** A real ingest endpoint on 127.0.0.1:0 writing to a real Redis stream under its own key prefix. */
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { StreamEvent } from '../../../src/core/event.js'
import { parseTool, type ToolConfig, type ToolInput } from '../../../src/core/tool.js'
import { createIngestHandler, type IngestObservation, type IngestOptions } from '../../../src/http/ingest.js'
import { createRouter, startHttpServer, type HttpServerOptions, type RunningHttpServer } from '../../../src/http/server.js'
import { streamKeys, type StreamKeys } from '../../../src/sources/keys.js'
import { entryEvent, entryRecord } from '../../helpers/events.js'
import { StreamClient } from '../../../src/sources/stream-client.js'

export interface IngestHarness {
  readonly url: string
  readonly port: number
  readonly keys: StreamKeys
  readonly redis: Redis
  readonly tools: Map<string, ToolConfig>
  readonly observed: IngestObservation[]
  addTool(input: ToolInput): ToolConfig
  post(toolId: string, body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; json: any; headers: Headers }>
  length(): Promise<number>
  entries(): Promise<{ event: StreamEvent; fields: Record<string, string> }[]>
  close(): Promise<void>
}

export async function startIngest(redisUrl: string, options: Partial<IngestOptions> = {}, serverOptions: HttpServerOptions = {}): Promise<IngestHarness> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  const keys = streamKeys({ prefix: `test-${randomUUID()}:` })
  const tools = new Map<string, ToolConfig>()
  const observed: IngestObservation[] = []
  let http: RunningHttpServer
  try {
    const ingest = createIngestHandler({
      tools: { get: async (id) => tools.get(id) },
      stream: new StreamClient({ redis, stream: keys.stream }),
      redis, keys, observe: (o) => observed.push(o), ...options,
    })
    http = await startHttpServer('127.0.0.1:0', createRouter([{ method: 'POST', path: '/webhooks/:toolId', handler: ingest }]), serverOptions)
  } catch (err) {
    redis.disconnect()
    throw err
  }
  return {
    url: http.url, port: http.port, keys, redis, tools, observed,
    addTool(input) {
      const tool = parseTool(input)
      tools.set(tool.id, tool)
      return tool
    },
    async post(toolId, body, headers) {
      const res = await fetch(`${http.url}/webhooks/${encodeURIComponent(toolId)}`, { method: 'POST', body, headers })
      const text = await res.text()
      return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers }
    },
    async length() {
      return Number(await redis.call('XLEN', keys.stream))
    },
    async entries() {
      const raw = (await redis.call('XRANGE', keys.stream, '-', '+')) as [string, string[]][]
      return raw.map(([, list]) => ({ event: entryEvent(list), fields: entryRecord(list) }))
    },
    async close() {
      await http.close()
      redis.disconnect()
    },
  }
}
