import { createHash, randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { isPipelineError, PipelineError } from '../core/errors.js'
import { DELIVERY_ID_PATTERN, validateStreamEvent, type StreamEvent } from '../core/event.js'
import { DEFAULT_SCRUB_HEADERS, headerScrubber } from '../core/scrub-headers.js'
import { TOOL_ID_PATTERN, type Provider, type ToolConfig, type ToolLookup } from '../core/tool.js'
import { ingestTelemetry } from '../observability/ingest-telemetry.js'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import { deliverySeen, type DeliverySeen, type StreamKeys } from '../sources/keys.js'
import { DeliverySeenLevels } from '../sources/delivery-seen-levels.js'
import type { StreamPartitions } from '../sources/partitions.js'
import type { AddOptions, RedisClient, StreamClient } from '../sources/stream-client.js'
import { ingestBudget, type InflightBudget } from './inflight-budget.js'
import type { ProviderAdapter } from './providers/provider.js'
import { PROVIDER_ADAPTERS } from './providers/provider-adapters.js'
import { verifyRotating } from './providers/verify-rotating.js'
import { rateLimit } from './rate-limit.js'
import { sendJson } from './server.js'
import { DEFAULT_MAX_JSON_DEPTH, unstorableJson } from './storable-json.js'
import { positiveInteger as ownedPositiveInteger } from '../core/positive-integer.js'

/** The subset of ioredis ingest uses for its rate-limit keys. */
export type IngestRedis = Pick<RedisClient, 'call' | 'status'>

/** What happened to one request, for metrics and logs. Labels built from it must stay bounded. */
export interface IngestObservation {
  /** Set only once the tool was found, so an attacker's made-up ids never become label values. */
  readonly toolId?: string
  readonly provider?: Provider
  readonly status: number
  /** `ACCEPTED`, `DUPLICATE`, or the error code of the response. */
  readonly code: string
  readonly eventId?: string
  readonly durationMs: number
}

export interface IngestOptions {
  readonly tools: ToolLookup
  /** The main stream (`keys.stream`). */
  readonly stream: StreamClient
  /**
   * Client for the rate-limit keys (may be the stream's client). The "delivery seen" hashes go over the client of
   * the event's stream (or partition), in the same script as its XADD.
   */
  readonly redis: IngestRedis
  readonly keys: StreamKeys
  /**
   * The main stream split into partitions (STREAM_PARTITIONS > 1): each event goes to its partition's stream,
   * and its "delivery seen" key carries that partition's hash tag. @defaultValue none: `stream` and `keys`
   */
  readonly partitions?: StreamPartitions
  /**
   * Largest body accepted, in bytes; larger ones get 413 without being read. A tool's `max_body` may lower it for
   * that tool. @defaultValue 10 MiB
   */
  readonly maxBodyBytes?: number
  /**
   * The process-wide budget of body bytes in memory (INGEST_MAX_INFLIGHT_BYTES). A request to a known tool
   * reserves its Content-Length (a chunked one, each chunk) before its body is read; when the budget cannot
   * spare it, 503 `INGEST_BUSY` with Retry-After and `Connection: close`, and the body is not read. Requests to
   * unknown tools never read their body. One client holds at most the budget's `perClientBytes` and one tool's
   * requests at most its `perToolBytes`. Must hold at least twice `maxBodyBytes`, and each share at least
   * `maxBodyBytes` (`ingestBudget` sizes them so).
   * @defaultValue `ingestBudget` of 64 MiB (or twice `maxBodyBytes`, if larger) for this handler
   */
  readonly inflightBudget?: InflightBudget
  /**
   * Accepted requests per second per tool (a token bucket in Redis shared by every ingest process); over it,
   * 429 `RATE_LIMITED` with Retry-After. Checked after the signature, so unsigned traffic cannot use up a
   * tool's quota. @defaultValue unset: no limit
   */
  readonly rateLimit?: { readonly ratePerSecond: number; readonly burst?: number }
  /** Approximate stream cap passed to XADD (`MAXLEN ~`). @defaultValue unset (no trimming) */
  readonly maxLen?: number
  /**
   * Deepest nesting of arrays and objects accepted; deeper payloads get 400 `PAYLOAD_NOT_STORABLE`, as do NUL
   * and unpaired surrogate escapes (PostgreSQL's jsonb cannot hold them). @defaultValue 512
   */
  readonly maxJsonDepth?: number
  /** How long a provider delivery id is remembered to answer re-sends as duplicates. @defaultValue 86400 (24h) */
  readonly deliverySeenTtlSeconds?: number
  /** Upper bound of each Redis call; past it ingest answers 503. @defaultValue 2000 */
  readonly redisTimeoutMs?: number
  /** `Retry-After` of 503 answers, in seconds. @defaultValue 5 */
  readonly retryAfterSeconds?: number
  /** Called once per request after the response was sent. Must not throw. */
  readonly observe?: (observation: IngestObservation) => void
  /**
   * Counts every answer in `webhook_ingest_requests_total{tool_id,code}` (tool "unknown" until the tool is
   * found) and bad signatures in `webhook_signature_failures_total{tool_id}`. @defaultValue none
   */
  readonly metrics?: Metrics
  /** Logs 5xx answers at warn and every other answer at debug, with `event_id` and `trace_id`. @defaultValue none */
  readonly logger?: Logger
  /**
   * Record a `webhook.ingest` span (SERVER; a child of the request's `traceparent` when it has one) and store
   * the span's own traceparent with the stream entry, so the worker's `webhook.process` span is its child.
   * Off: the request's traceparent is stored as it came. Pass `startTracing(…).enabled`. @defaultValue false
   */
  readonly tracing?: boolean
  /**
   * Inbound headers dropped from `metadata.headers` before the event is queued (credentials: never stored,
   * never forwarded): names, `*-suffix` or `prefix-*` patterns (INGEST_SCRUB_HEADERS). @defaultValue DEFAULT_SCRUB_HEADERS
   */
  readonly scrubHeaders?: readonly string[]
}

/** A request handler for `POST /webhooks/:toolId`; without `params` it reads the tool id from the URL itself. */
export type IngestHandler = (req: IncomingMessage, res: ServerResponse, params?: Readonly<Record<string, string>>) => Promise<void>

class Reply {
  constructor(readonly status: number, readonly code: string, readonly message: string, readonly headers: Record<string, string> = {}) {}
}

const DROPPED_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-gitlab-token', 'webhook-signature'])
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/
const EVENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/

const positiveInteger = ownedPositiveInteger.bind(undefined, 'createIngestHandler')

const jsonHeaders = (length: number) => ({ 'content-type': 'application/json; charset=utf-8', 'content-length': length })
const PLAIN_STRING = /^[\x20-\x7e]*$/
const NEEDS_ESCAPE = /["\\]/

// a JSON string of an event id without JSON.stringify for the ids ingest makes (UUIDs, delivery ids of
// printable ASCII): only a quote or a backslash needs escaping there
function jsonString(text: string): string {
  return PLAIN_STRING.test(text) && !NEEDS_ESCAPE.test(text) ? `"${text}"` : JSON.stringify(text)
}

// reads the whole body, or stops at the first byte past maxBytes and returns undefined (the rest is never
// read or buffered; the caller answers 413 with Connection: close), or at the first chunk `reserve` refuses
// and returns 'busy' (the caller answers 503)
function readBodyLimited(req: IncomingMessage, maxBytes: number, reserve?: (bytes: number) => boolean): Promise<Buffer | undefined | 'busy'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = () => { req.off('data', onData); req.off('end', onEnd); req.off('error', onError); req.off('aborted', onAborted) }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      const busy = size <= maxBytes && reserve !== undefined && !reserve(chunk.length)
      if (size > maxBytes || busy) {
        done()
        req.pause()
        chunks.length = 0
        resolve(busy ? 'busy' : undefined)
        return
      }
      chunks.push(chunk)
    }
    // a body that came in one chunk is that chunk (its own memory, not reused by the socket): no copy
    const onEnd = () => { done(); resolve(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, size)) }
    const onError = () => { done(); reject(new Reply(400, 'REQUEST_ABORTED', 'the request body could not be read completely')) }
    const onAborted = () => { done(); reject(new Reply(400, 'REQUEST_ABORTED', 'the client closed the connection before the body was complete')) }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('aborted', onAborted)
  })
}

function toolIdFromUrl(url: string | undefined): string {
  try {
    return decodeURIComponent(/^\/webhooks\/([^/?]+)\/?(?:\?|$)/.exec(url ?? '')?.[1] ?? '')
  } catch {
    return ''
  }
}

function mediaType(headers: IncomingHttpHeaders): string {
  return (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
}

// the payload, its JSON text as received, and that text's bytes (the body itself, unless it was form-encoded).
// The text goes to XADD: ioredis writes an all-text command as one string, where a Buffer argument made it
// allocate and copy a new Buffer per command (the ingest bench scenario, 3 alternating pairs: 264–292 against
// 215–236 µs of CPU per request, most of the difference the major GCs those off-heap buffers started)
function parseBody(rawBody: Buffer, type: string): { payload: unknown; json: string; bytes: Buffer } {
  let json = rawBody.toString('utf8')
  let bytes = rawBody
  if (type === 'application/x-www-form-urlencoded') {
    const payload = new URLSearchParams(json).get('payload')
    if (payload === null) throw new Reply(400, 'INVALID_PAYLOAD', 'form-encoded body must have a "payload" field holding the JSON payload')
    json = payload
    bytes = Buffer.from(payload)
  }
  try {
    return { payload: JSON.parse(json), json, bytes }
  } catch (err) {
    throw new Reply(400, 'INVALID_PAYLOAD', `request body is not valid JSON (${(err as Error).message.slice(0, 120)}); send the payload as one JSON document`)
  }
}

function keptHeaders(headers: IncomingHttpHeaders, secret: readonly string[], scrub: (name: string) => boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || DROPPED_HEADERS.has(name) || secret.includes(name) || name.startsWith('x-hub-signature') || scrub(name)) continue
    out[name] = value
  }
  return out
}

/**
 * Builds the webhook front door: size limit → tool lookup → content type → signature on the raw bytes →
 * parse → normalize → "delivery seen" check → XADD, answering 202 `{ id, stream_id }` (or
 * `{ id, duplicate: true }` for a re-sent delivery id). Errors are JSON `{ error: { code, message } }`:
 * 400 `INVALID_PAYLOAD`/`PAYLOAD_NOT_STORABLE`/`MISSING_HEADER`/`INVALID_EVENT_TYPE`/`INVALID_DELIVERY_ID`, 401 `SIGNATURE_INVALID`,
 * 404 `UNKNOWN_TOOL`, 413 `PAYLOAD_TOO_LARGE`, 415 `UNSUPPORTED_MEDIA_TYPE`, and 503 with `Retry-After`
 * (`REDIS_UNAVAILABLE`, `TOOLS_UNAVAILABLE`, `INGEST_BUSY`) whenever the event could not be queued, so the sender retries.
 *
 * @example
 * const ingest = createIngestHandler({ tools: registry, stream: new StreamClient({ redis, stream: keys.stream }), redis, keys })
 * const server = await startHttpServer(':8080', createRouter([{ method: 'POST', path: '/webhooks/:toolId', handler: ingest }]))
 */
export function createIngestHandler(options: IngestOptions): IngestHandler {
  const { tools, stream, redis, keys, observe } = options
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes, 10 * 1024 * 1024)
  const maxJsonDepth = positiveInteger('maxJsonDepth', options.maxJsonDepth, DEFAULT_MAX_JSON_DEPTH)
  const ttlSeconds = positiveInteger('deliverySeenTtlSeconds', options.deliverySeenTtlSeconds, 86_400)
  const seenLevels = new DeliverySeenLevels(ttlSeconds)
  const timeoutMs = positiveInteger('redisTimeoutMs', options.redisTimeoutMs, 2000)
  const retryAfter = String(positiveInteger('retryAfterSeconds', options.retryAfterSeconds, 5))
  if (options.maxLen !== undefined) positiveInteger('maxLen', options.maxLen, 1)
  const scrub = headerScrubber(options.scrubHeaders ?? DEFAULT_SCRUB_HEADERS)
  const budget = options.inflightBudget ?? ingestBudget(Math.max(64 * 1024 * 1024, 2 * maxBodyBytes), maxBodyBytes)
  if (budget.limitBytes < 2 * maxBodyBytes) {
    throw new RangeError(`createIngestHandler: "inflightBudget" must hold at least twice "maxBodyBytes" (${maxBodyBytes}), or a body that large ` +
      `could never be admitted; got ${budget.limitBytes}`)
  }
  if (Math.min(budget.perClientBytes, budget.perToolBytes) < maxBodyBytes) {
    throw new RangeError(`createIngestHandler: "inflightBudget"'s perClientBytes and perToolBytes must each be at least "maxBodyBytes" ` +
      `(${maxBodyBytes}), or a body that large could never be admitted; got ${budget.perClientBytes} and ${budget.perToolBytes} (ingestBudget sizes them)`)
  }
  const unavailable = (code: string, message: string) => new Reply(503, code, message, { 'retry-after': retryAfter })

  async function bounded<T>(what: string, client: Pick<RedisClient, 'status'>, work: () => Promise<T>): Promise<T> {
    // ioredis queues commands while it reconnects; answer at once instead of waiting for a server that is gone
    if (client.status === 'reconnecting' || client.status === 'close' || client.status === 'end') {
      throw unavailable('REDIS_UNAVAILABLE', `Redis is not connected (${what}); retry later`)
    }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(unavailable('REDIS_UNAVAILABLE', `Redis did not answer within ${timeoutMs} ms (${what}); retry later`)), timeoutMs)
    })
    try {
      return await Promise.race([work(), timeout])
    } catch (err) {
      if (err instanceof Reply) throw err
      throw unavailable('REDIS_UNAVAILABLE', `Redis failed (${what}); retry later`)
    } finally {
      clearTimeout(timer)
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, toolId: string, state: { tool?: ToolConfig; eventId?: string }, traceparent: string | undefined) {
    const declared = Number(req.headers['content-length'])
    const tooLarge = () => new Reply(413, 'PAYLOAD_TOO_LARGE', `request body is larger than the limit of ${maxBodyBytes} bytes (INGEST_MAX_BODY)`, { connection: 'close' })
    if (declared > maxBodyBytes) throw tooLarge()
    const notFound = () => new Reply(404, 'UNKNOWN_TOOL', `no enabled tool "${toolId.slice(0, 128)}" is configured; check the webhook URL (POST /webhooks/<tool id>)`)
    // the id's shape first: an id no tool can have (a NUL byte, 10 KB of text) never reaches the registry or the database
    if (!TOOL_ID_PATTERN.test(toolId)) throw notFound()
    let tool: ToolConfig | undefined
    try {
      tool = await tools.get(toolId)
    } catch (err) {
      const kind = isPipelineError(err) ? err.kind : 'infrastructure'
      if (isPipelineError(err) && err.code === 'TOOL_UNREADABLE') {
        throw unavailable('TOOL_UNREADABLE', `tool "${toolId}" is configured but cannot be read on this server (an invalid row or a secret the encryption key cannot decrypt); retry later`)
      }
      if (kind !== 'infrastructure') throw err
      throw unavailable('TOOLS_UNAVAILABLE', 'tool configuration cannot be loaded right now; retry later')
    }
    if (!tool || !tool.enabled) throw notFound()
    state.tool = tool
    const adapter = PROVIDER_ADAPTERS[tool.provider]
    const type = mediaType(req.headers)
    if (!adapter.contentTypes.includes(type)) {
      throw new Reply(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${adapter.contentTypes.join(' or ')} for provider "${tool.provider}"; got ${JSON.stringify(type.slice(0, 100))}`)
    }
    const rawBody = await readBodyWithin(req, res, tool, declared)
    const request = { headers: req.headers, rawBody }
    const verified = verifyRotating(adapter, request, tool)
    if (!verified.ok) throw new Reply(401, 'SIGNATURE_INVALID', 'signature verification failed')
    if (options.rateLimit) {
      const limit = options.rateLimit
      const r = await bounded('rate limit', redis, () => rateLimit(redis, `${options.keys.rateLimitPrefix}${tool.id}`, limit))
      if (!r.allowed) {
        const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000))
        throw new Reply(429, 'RATE_LIMITED', `tool "${tool.id}" sent more than ${limit.ratePerSecond} requests/s ` +
          `(burst ${limit.burst ?? Math.ceil(limit.ratePerSecond)}); retry after ${seconds} s`, { 'retry-after': String(seconds) })
      }
    }
    const { event, payloadJson, senderId } = entryOf(req, request, type, tool, adapter, verified.verified)
    state.eventId = event.id
    // on a cluster the seen key and the partition's stream share a hash tag, so one script may touch both
    const { stream, keys } = options.partitions && options.partitions.count > 1 ? options.partitions.route(event) : options
    let seen: DeliverySeen | undefined
    if (senderId) {
      // the quarter-windows' levels come from Redis once per quarter; every other request has them at hand
      const now = Date.now()
      const known = seenLevels.of(stream.redis, keys, now)
      const levels = known instanceof Promise ? await bounded('delivery-seen levels', stream.redis, () => known) : known
      seen = deliverySeen(keys, tool.id, event.id, ttlSeconds, now, levels)
    }
    const addOptions = {
      payloadJson,
      ...(traceparent ? { traceparent } : {}), ...(options.maxLen !== undefined ? { maxLen: options.maxLen } : {}),
      // validated just above: the XADD does not check it again
      validated: true,
    }
    try {
      // the "delivery seen" check and the XADD go in one atomic round trip
      const streamId = seen === undefined
        ? await bounded('XADD', stream.redis, () => stream.add(event, addOptions))
        : await addOnce(stream, seen, rawBody, event, addOptions, tool.id)
      if (streamId === null) return { status: 202, code: 'DUPLICATE', body: `{"id":${jsonString(event.id)},"duplicate":true}` }
      return { status: 202, code: 'ACCEPTED', body: `{"id":${jsonString(event.id)},"stream_id":"${streamId}"}` }
    } catch (err) {
      // the sender will retry a 503; if the script ran late after a timeout its key would make that retry look
      // like a duplicate and the event be lost, so the key goes
      if (seen !== undefined) forget(stream.redis, seen)
      throw err
    }
  }

  // the body to the stream entry, with no await: the parsed payload is garbage once this returns, so it is not held
  // while the request waits for Redis (a 10 MiB body of tiny arrays or objects parses to 150–250 MB of heap). The
  // entry's payload goes as JSON text; the event it comes with carries none
  function entryOf(req: IncomingMessage, request: { headers: IncomingHttpHeaders; rawBody: Buffer }, type: string, tool: ToolConfig,
    adapter: ProviderAdapter, verified: boolean): { event: StreamEvent; payloadJson: string; senderId: boolean } {
    const { payload, json, bytes } = parseBody(request.rawBody, type)
    const unstorable = unstorableJson(bytes, maxJsonDepth)
    if (unstorable !== undefined) {
      throw new Reply(400, 'PAYLOAD_NOT_STORABLE', `the payload holds ${unstorable}, which PostgreSQL's jsonb cannot store; ` +
        `send it without that (nesting limit INGEST_MAX_JSON_DEPTH = ${maxJsonDepth})`)
    }
    const delivery = adapter.normalize(request, payload, tool)
    const idWhere = tool.deliveryId === undefined ? undefined
      : 'header' in tool.deliveryId ? `header "${tool.deliveryId.header}"` : `payload at JSON pointer "${tool.deliveryId.pointer}"`
    if (idWhere !== undefined && delivery.deliveryId === undefined) {
      throw new Reply(400, 'INVALID_DELIVERY_ID', `tool "${tool.id}" takes its delivery id from the ${idWhere}, and this request has none there (or not a string or number)`)
    }
    if (!EVENT_NAME.test(delivery.event)) {
      throw new Reply(400, 'INVALID_EVENT_TYPE', `event name must be 1–128 letters, digits or "._:/-"; got ${JSON.stringify(delivery.event.slice(0, 64))}`)
    }
    if (delivery.deliveryId !== undefined && !DELIVERY_ID_PATTERN.test(delivery.deliveryId)) {
      throw new Reply(400, 'INVALID_DELIVERY_ID', `the delivery id (from the ${idWhere ?? `${tool.provider} delivery id header`}) must be 1–200 ` +
        `printable characters without spaces; got ${JSON.stringify(delivery.deliveryId.slice(0, 64))}`)
    }
    const event: StreamEvent = validateStreamEvent({
      id: delivery.deliveryId ?? randomUUID(),
      event_type: `webhook.${tool.provider}.${delivery.event}`,
      repository: delivery.repository,
      tenant_id: tool.tenantId,
      tool_id: tool.id,
      payload: delivery.payload,
      auth_context: { provider: tool.provider, verified },
      metadata: { headers: keptHeaders(req.headers, adapter.secretHeaders(tool), scrub) },
      timestamp: new Date().toISOString(),
      retry_count: 0,
    }, `ingest for tool "${tool.id}"`)
    // an adapter that reshaped the payload gets it serialized; otherwise its text goes in as received
    const payloadJson = delivery.payload === payload ? json : JSON.stringify(delivery.payload) ?? 'null'
    return { event: { ...event, payload: null }, payloadJson, senderId: delivery.deliveryId !== undefined }
  }

  // the body within the tool's limit and the in-flight budget; reserved before a byte of it is read, so that
  // unsigned uploads cannot hold more memory than the budget, whatever tool they name
  async function readBodyWithin(req: IncomingMessage, res: ServerResponse, tool: ToolConfig, declared: number): Promise<Buffer> {
    const limit = Math.min(tool.maxBodyBytes ?? maxBodyBytes, maxBodyBytes)
    const tooLarge = () => new Reply(413, 'PAYLOAD_TOO_LARGE', limit < maxBodyBytes
      ? `request body is larger than tool "${tool.id}"'s limit of ${limit} bytes (its max_body); send less or raise the tool's max_body`
      : `request body is larger than the limit of ${maxBodyBytes} bytes (INGEST_MAX_BODY)`, { connection: 'close' })
    const busy = () => {
      options.metrics?.ingestBusy()
      const why = reservation.refusedBy === 'client'
        ? `this client's requests hold its share of ingest's in-flight budget (${budget.perClientBytes} bytes, a quarter of INGEST_MAX_INFLIGHT_BYTES)`
        : reservation.refusedBy === 'tool'
          ? `the requests to tool "${tool.id}" hold its share of ingest's in-flight budget (${budget.perToolBytes} bytes, half of INGEST_MAX_INFLIGHT_BYTES)`
          : `ingest holds as many request bodies as its budget of ${budget.limitBytes} bytes allows (INGEST_MAX_INFLIGHT_BYTES)`
      return new Reply(503, 'INGEST_BUSY', `${why}; retry later`, { 'retry-after': retryAfter, connection: 'close' })
    }
    if (declared > limit) throw tooLarge()
    const reservation = budget.reserveFor(res, tool.id)
    const chunked = !Number.isSafeInteger(declared)
    if (!chunked && !reservation.take(declared)) throw busy()
    const body = await readBodyLimited(req, limit, chunked ? (bytes) => reservation.take(bytes) : undefined)
    if (body === 'busy') throw busy()
    if (body === undefined) throw tooLarge()
    return body
  }

  // the seen key keeps the first body's hash: a re-send is still a 202 duplicate (a sender must not learn to
  // retry), but one with another body is counted and logged with both hashes (never the body)
  async function addOnce(stream: StreamClient, seen: DeliverySeen, rawBody: Buffer, event: StreamEvent, addOptions: AddOptions, toolId: string) {
    // 48 bits of the body's SHA-256 tell a different body apart, in 8 bytes of Redis per delivery
    const hash = createHash('sha256').update(rawBody).digest().subarray(0, 6).toString('base64url')
    const result = await bounded('XADD', stream.redis, () => stream.addOnce(seen, hash, event, addOptions))
    if (result.streamId !== null) return result.streamId
    const body = result.seenValue === hash ? 'same' : 'different'
    options.metrics?.ingestDuplicate(toolId, body)
    if (body === 'different') {
      options.logger?.warn({ tool_id: toolId, event_id: event.id, first_body_hash: result.seenValue, body_hash: hash },
        'a re-sent delivery id came with a different body; answered as a duplicate and not queued (a replay, or a sender reusing ids)')
    }
    return null
  }

  // over the connection the script went on (`options.redis` may be another client): a command queued there, also
  // while Redis reconnects, runs in order after the script, so this also undoes a late HSET
  function forget(client: StreamClient['redis'], seen: DeliverySeen): void {
    bounded('delivery key cleanup', client, () => client.call('HDEL', seen.buckets[0], seen.field)).catch(() => undefined)
  }

  const telemetry = options.metrics || options.logger || options.tracing
    ? ingestTelemetry({ stream: keys.stream, tracing: options.tracing ?? false,
      ...(options.metrics ? { metrics: options.metrics } : {}), ...(options.logger ? { logger: options.logger } : {}) })
    : undefined

  return async (req, res, params) => {
    const started = performance.now()
    const state: { tool?: ToolConfig; eventId?: string } = {}
    const incoming = typeof req.headers.traceparent === 'string' && TRACEPARENT.test(req.headers.traceparent) ? req.headers.traceparent : undefined
    const t = telemetry?.start(incoming)
    let status: number
    let code: string
    let error: unknown
    try {
      const toolId = params?.toolId ?? toolIdFromUrl(req.url)
      const ok = await handle(req, res, toolId, state, t ? t.traceparent : incoming)
      status = ok.status
      code = ok.code
      // the answer is built as text: JSON.stringify of a two-field object was a measurable part of a request
      if (!res.headersSent) res.writeHead(status, jsonHeaders(Buffer.byteLength(ok.body))).end(ok.body)
    } catch (err) {
      if (!(err instanceof Reply)) error = err
      const reply = err instanceof Reply ? err
        : isPipelineError(err) && err.kind === 'permanent' ? new Reply(400, err.code, err.message)
          : new Reply(503, 'INGEST_FAILED', 'the event could not be queued; retry later', { 'retry-after': retryAfter })
      status = reply.status
      code = reply.code
      sendJson(res, status, { error: { code, message: reply.message } }, reply.headers)
    }
    t?.finish({ ...(state.tool ? { toolId: state.tool.id } : {}), ...(state.eventId ? { eventId: state.eventId } : {}),
      status, code, ...(error !== undefined ? { error } : {}) })
    try {
      observe?.({
        ...(state.tool ? { toolId: state.tool.id, provider: state.tool.provider } : {}),
        status, code, ...(state.eventId ? { eventId: state.eventId } : {}), durationMs: performance.now() - started,
      })
    } catch {
      // an observer bug must not turn an accepted event into an error; the response is already sent
    }
  }
}
