import { Agent, type Dispatcher } from 'undici'
import type { StreamEvent } from '../core/event.js'
import { PipelineError } from '../core/errors.js'
import { maskUrl } from '../core/mask-url.js'
import type { ToolConfig } from '../core/tool.js'
import { activeSecrets } from '../core/tool-secrets.js'
import { createPinnedConnector } from './pinned-connector.js'
import { signWebhook } from './sign-webhook.js'
import type { Sink } from './sink.js'
import type { CircuitBreakers } from './circuit-breaker.js'
import type { DestinationRateLimit, DestinationRateLimiter } from './destination-rate-limit.js'
import { createEgressPolicy, EgressRefusedError, type AllowPrivate, type HostLookup } from './ssrf-guard.js'

/** One event to forward, with the tool that says where and how to sign. */
export interface ForwardItem {
  readonly event: StreamEvent
  /**
   * The tool: `forwardUrl` is the destination; `forwardSecret` (and `previousForwardSecret` until it expires)
   * sign the request, or the inbound `secret` when the tool has no forward secret (no signature when empty);
   * `forwardHeaders` are sent with it.
   */
  readonly tool: Pick<ToolConfig, 'id' | 'secret' | 'forwardUrl' | 'forwardSecret' | 'previousForwardSecret' | 'previousForwardSecretExpiresAt' | 'forwardHeaders'>
  /** The transform's result, sent as `transformed` next to the event's fields. */
  readonly transformed?: unknown
  /**
   * The event's JSON text as it was on the stream, sent byte for byte as the body when there is no `transformed`
   * (the payload goes out as the sender wrote it, and is not serialized again). Give it only when it holds
   * exactly `event`. @defaultValue JSON.stringify(event)
   */
  readonly eventJson?: string
  /** W3C trace context of the event, sent as the `traceparent` header. */
  readonly traceparent?: string
  /** The replay this request belongs to, sent as the `webhook-replay-id` header; absent on a first delivery. */
  readonly replayId?: string
  /**
   * The destination this item goes to: its breaker, rate limit and `maxConcurrency` are keyed by the tool's id and
   * it (`<tool id>/<destination id>`: an id is unique only within its tool), and when the tool has several, `tool`
   * is that destination's view. @defaultValue the tool's id (its `forward_url`)
   */
  readonly destinationId?: string
  /** The body to send as it is (a destination's transform result as JSON text); wins over `transformed` and `eventJson`. */
  readonly body?: string
  /** Time for this request in ms (a destination's `timeout`). @defaultValue the sink's `timeoutMs` */
  readonly timeoutMs?: number
  /** The destination's rate limit, enforced with the sink's `rateLimiter`. @defaultValue the sink's `rateLimitOf`, else none */
  readonly rateLimit?: DestinationRateLimit
  /**
   * Requests in flight at once to this destination (in this process; an integer of at least 1), within the origin's
   * `perDestinationConcurrency`; a request waiting longer than `slotWaitMs` for a stalled destination is
   * `DESTINATION_BUSY` as for the origin's slots. @defaultValue no limit of its own
   */
  readonly maxConcurrency?: number
}

/** What one delivery of an item did (`ForwardSink.deliver`). */
export interface ForwardAttempt {
  /** Undefined when the destination accepted it (2xx). */
  readonly failure?: PipelineError
  /** Whether a request went out; false when the breaker, the rate limit or the bulkhead held it back. */
  readonly sent: boolean
  /** The destination's id (the tool's id for its `forward_url`), as the delivery log records it. */
  readonly destination: string
  /**
   * What the destination's breaker, rate limit and metrics are keyed by: `<tool id>/<destination id>`, or the tool's
   * id for its `forward_url` (the `destination` label of the forward metrics and of `webhook_destination_state`).
   */
  readonly key: string
  /** When the attempt started, ms since epoch. */
  readonly startedAt: number
  /** From the start to the end of the response (or the failure), in ms. */
  readonly durationMs: number
  /** The response status, when a response came. */
  readonly status?: number
  /** The first 1 KiB of the response body, when a response came. */
  readonly responseBody?: string
}

/**
 * Limits of ForwardSink.
 *
 * @example
 * new ForwardSink({ timeoutMs: 5000, perDestinationConcurrency: 4 })
 */
export interface ForwardSinkOptions {
  /** Time for one request, from sending to the response headers. @defaultValue 10000 */
  readonly timeoutMs?: number
  /**
   * Requests in flight at once per destination origin; a slow destination cannot take another's slots. Destinations
   * that share an origin share these: each may hold all but one of them (one is left for the others), and a slot
   * that comes free goes to the waiting destination that holds the fewest. @defaultValue 10
   */
  readonly perDestinationConcurrency?: number
  /**
   * How long (ms) a request waits for a slot of a destination that has finished no request in that time (it
   * stalls) before it fails with transient `DESTINATION_BUSY` (Retry-After = timeoutMs), so `retryBackoff`
   * parks it instead of letting a hanging destination hold the pipeline's credit. A destination that keeps
   * answering is waited for, by at most `perDestinationConcurrency` of a destination's requests: its others give up
   * after this long as deferred `DESTINATION_BUSY` (parked without spending a retry, for as long as its oldest
   * waiter has waited), at once while its oldest waiter has waited this long, so a slow destination cannot fill
   * the pipeline's concurrency with its waiters. @defaultValue 1000
   */
  readonly slotWaitMs?: number
  /**
   * Special-purpose destinations (the IANA registries in `SPECIAL_PURPOSE_RANGES`: loopback, private,
   * link-local, CGNAT, benchmarking, NAT64, 6to4, Teredo, multicast, broadcast, …): `true` allows them,
   * `false` refuses them, a list of CIDRs allows only those. The host is resolved once per new connection,
   * every address is checked, and the socket goes to the checked address; a refusal is a permanent
   * `FORWARD_URL_FORBIDDEN`. The service sets this from FORWARD_ALLOW_PRIVATE (default false there).
   * @defaultValue true
   */
  readonly allowPrivate?: AllowPrivate
  /** Resolves destination host names (tests answer with loopback addresses). @defaultValue dns.lookup, all addresses */
  readonly lookup?: HostLookup
  /** How long (ms) an idle keep-alive connection to a destination stays open for the next forward. @defaultValue 4000 */
  readonly keepAliveMs?: number
  /**
   * Circuit breakers per destination: while a destination's is open, its deliveries fail with a deferred transient
   * `DESTINATION_CIRCUIT_OPEN` (Retry-After = the wait for the next probe), which `retryBackoff` parks without
   * spending a retry. @defaultValue none
   */
  readonly breakers?: CircuitBreakers
  /**
   * The shared token buckets of rate-limited destinations: an item over its limit fails with a deferred transient
   * `DESTINATION_RATE_LIMITED`, and a receiver's Retry-After empties its bucket until then. @defaultValue none
   */
  readonly rateLimiter?: DestinationRateLimiter
  /** A destination's rate limit when the item carries none. @defaultValue item.rateLimit */
  readonly rateLimitOf?: (item: ForwardItem) => DestinationRateLimit | undefined
}

const BODY_HEAD_BYTES = 1024
// a response body is read up to this many bytes (so its connection can be kept); a longer one closes the connection
const BODY_READ_BYTES = 64 * 1024
// failures that say the destination itself is unwell; a 4xx or 429 means it answers, so they do not trip the breaker
const BREAKER_FAILURES = new Set(['DESTINATION_5XX', 'DESTINATION_TIMEOUT', 'DESTINATION_UNREACHABLE'])

/** Milliseconds from a Retry-After value (delay-seconds or an HTTP-date), or undefined when absent or unreadable. */
function retryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

// userinfo and query values masked: they may carry credentials
function safeUrl(url: URL): string {
  return maskUrl(url.href)
}

// a URL keeps a stray "%" as written; such text is sent as it is rather than failing the forward
function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

function networkCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code
  }
  return undefined
}

// a forward waiting for a slot: whose it is (its guard key), since when, and how to hand it the slot
interface Waiter { readonly owner: string; readonly since: number; readonly grant: () => void }
// one semaphore: slots taken, by owner, and the forwards waiting for one
interface Slots { active: number; readonly held: Map<string, number>; readonly waiting: Waiter[]; lastReleaseAt: number }
// why no slot came: the destination stalled, its owner already has its share of waiters, or the attempt ran out of time
type NoSlot = 'stalled' | 'over-share' | 'aborted'

// how one request ended: a status (with its Retry-After), or the error that ended it before any
type Outcome = { readonly status: number; readonly retryAfter: string | undefined } | { readonly error: unknown; readonly timedOut: boolean }

// a forward's headers: the tool's own, the Standard Webhooks id, timestamp and signature(s), the trace context,
// and Basic auth from credentials in the URL (undici never sends userinfo; a forward header wins)
function requestHeaders(url: URL, item: ForwardItem, body: Buffer): Record<string, string> {
  const { event, tool } = item
  const timestamp = Math.floor(Date.now() / 1000)
  const headers: Record<string, string> = {
    ...tool.forwardHeaders, 'content-type': 'application/json', 'user-agent': 'hookstream',
    'webhook-id': event.id, 'webhook-timestamp': String(timestamp),
  }
  // during a rotation both keys sign (space-separated, as Standard Webhooks allows): a receiver holding either verifies
  const keys = tool.forwardSecret
    ? activeSecrets(tool.forwardSecret, tool.previousForwardSecret, tool.previousForwardSecretExpiresAt)
    : activeSecrets(tool.secret, undefined, undefined)
  if (keys.length > 0) headers['webhook-signature'] = keys.map((key) => signWebhook(key, event.id, timestamp, body)).join(' ')
  if (item.traceparent) headers.traceparent = item.traceparent
  if (item.replayId) headers['webhook-replay-id'] = item.replayId
  if ((url.username || url.password) && headers.authorization === undefined) {
    headers.authorization = `Basic ${Buffer.from(`${percentDecoded(url.username)}:${percentDecoded(url.password)}`).toString('base64')}`
  }
  return headers
}

// what an item's breaker, rate-limit bucket and own slots are keyed by: the tool's id for its forward_url, else
// "<tool id>/<destination id>", since a destination id is unique only within its tool (neither id holds a "/")
function guardKey(item: ForwardItem): string {
  return item.destinationId === undefined ? item.tool.id : `${item.tool.id}/${item.destinationId}`
}

// what post() saw of one request, for the attempt record
interface Seen { sentAt?: number; status?: number; body?: string }

/**
 * Forwards events to each tool's `forward_url` as signed JSON POSTs (Standard Webhooks headers
 * `webhook-id`, `webhook-timestamp`, `webhook-signature`). The body is the StreamEvent's JSON (the item's
 * `eventJson` when given), plus `transformed` when the item has a transform result. Failures come back per
 * item: 408, 425, 429, 5xx, timeouts and connection errors are transient; other 4xx and 3xx are permanent.
 *
 * @example
 * const sink = new ForwardSink({ timeoutMs: 5000 })
 * const failures = await sink.write([{ event, tool }]) // Map { 0 => PipelineError DESTINATION_5XX } on a 503
 */
export class ForwardSink implements Sink<ForwardItem> {
  private readonly timeoutMs: number
  private readonly perDestination: number
  private readonly slotWaitMs: number
  private readonly agent: Agent
  private readonly slots = new Map<string, Slots>()
  // each destination's (guard key's) forwards waiting for a slot, its own or its origin's, oldest first
  private readonly waiters = new Map<string, Waiter[]>()
  // until when (ms since epoch) a destination counts as slow: one of its waiters waited slotWaitMs (granted or not)
  private readonly slowUntil = new Map<string, number>()
  // requests in flight, each with the function that cuts it off (close() calls them all)
  private readonly inFlight = new Set<(reason: Error) => void>()
  private readonly breakers: CircuitBreakers | undefined
  private readonly rateLimiter: DestinationRateLimiter | undefined
  private readonly rateLimitOf: (item: ForwardItem) => DestinationRateLimit | undefined
  private closing: Promise<void> | undefined

  constructor(options: ForwardSinkOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs < 1) {
      throw new RangeError(`ForwardSink: "timeoutMs" must be a positive integer (milliseconds); got ${options.timeoutMs}`)
    }
    this.perDestination = options.perDestinationConcurrency ?? 10
    if (!Number.isInteger(this.perDestination) || this.perDestination < 1) {
      throw new RangeError(`ForwardSink: "perDestinationConcurrency" must be an integer of at least 1; got ${options.perDestinationConcurrency}`)
    }
    this.slotWaitMs = options.slotWaitMs ?? 1000
    if (!Number.isFinite(this.slotWaitMs) || this.slotWaitMs < 0) {
      throw new RangeError(`ForwardSink: "slotWaitMs" must be a number of at least 0; got ${options.slotWaitMs}`)
    }
    const keepAliveMs = options.keepAliveMs ?? 4000
    if (!Number.isInteger(keepAliveMs) || keepAliveMs < 1) {
      throw new RangeError(`ForwardSink: "keepAliveMs" must be a positive integer (milliseconds); got ${options.keepAliveMs}`)
    }
    this.breakers = options.breakers
    this.rateLimiter = options.rateLimiter
    this.rateLimitOf = options.rateLimitOf ?? ((item) => item.rateLimit)
    const policy = createEgressPolicy({ allowPrivate: options.allowPrivate ?? true, ...(options.lookup ? { lookup: options.lookup } : {}) })
    // one pool per origin (the Agent keeps them), at most `perDestination` keep-alive connections each
    this.agent = new Agent({
      connections: this.perDestination, keepAliveTimeout: keepAliveMs, keepAliveMaxTimeout: keepAliveMs, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs,
      connect: createPinnedConnector({ policy, timeoutMs: this.timeoutMs }),
    })
  }

  /** Sends every item (bounded per destination); resolves with the failures by index. Never rejects. */
  async write(items: readonly ForwardItem[]): Promise<ReadonlyMap<number, PipelineError>> {
    if (this.closing) throw new Error('ForwardSink: write after close(); create a new sink')
    const failures = new Map<number, PipelineError>()
    await Promise.all(items.map(async (item, index) => {
      const { failure } = await this.deliver(item)
      if (failure) failures.set(index, failure)
    }))
    return failures
  }

  /**
   * Sends one item through the destination's rate limit and circuit breaker and says what happened: the
   * failure (if any), whether a request went out, its status, duration and the head of the response body.
   * Once `signal` aborts (the attempt ran out of time), a request still waiting for a slot is given up and
   * never sent. Rejects only after `close()`.
   */
  async deliver(item: ForwardItem, signal?: AbortSignal): Promise<ForwardAttempt> {
    if (this.closing) throw new Error('ForwardSink: deliver after close(); create a new sink')
    const destination = item.destinationId ?? item.tool.id
    const key = guardKey(item)
    const startedAt = Date.now()
    const held = (failure: PipelineError): ForwardAttempt => ({ failure, sent: false, destination, key, startedAt, durationMs: Date.now() - startedAt })
    const where = `forward of event "${item.event.id}" to destination "${destination}"`
    const limit = this.rateLimiter ? this.rateLimitOf(item) : undefined
    if (limit && this.rateLimiter) {
      let waitMs: number
      try {
        waitMs = await this.rateLimiter.take(key, limit)
      } catch (err) {
        return held(err as PipelineError)
      }
      if (waitMs > 0) {
        // spread the waiters over the next refills, so they do not all come back for the same token
        const retryAfterMs = waitMs + Math.floor(Math.random() * Math.max(waitMs, 1000 / limit.perSecond))
        return held(new PipelineError('transient', 'DESTINATION_RATE_LIMITED',
          `${where} is over its rate limit of ${limit.perSecond}/s (burst ${limit.burst}); it waits ${retryAfterMs} ms, parked, without spending a retry`,
          { retryAfterMs, deferred: true }))
      }
    }
    const gate = this.breakers?.admit(key)
    if (gate && !gate.allowed) {
      // spread over one more cool-down: the backlog neither waits in process for the probe nor comes back at once
      const retryAfterMs = gate.retryAfterMs + Math.floor(Math.random() * gate.retryAfterMs)
      return held(new PipelineError('transient', 'DESTINATION_CIRCUIT_OPEN',
        `${where}: the destination's circuit breaker is open after repeated failures; the delivery is parked for ${retryAfterMs} ms ` +
        'without spending a retry and goes once a probe succeeds — check the destination', { retryAfterMs, deferred: true }))
    }
    const seen: Seen = {}
    const failure = await this.send(item, seen, signal)
    // a request that went out is timed from its start (after the slot wait) to the end of its response
    const sentAt = seen.sentAt ?? startedAt
    const durationMs = Date.now() - sentAt
    const sent = failure === undefined || seen.status !== undefined || BREAKER_FAILURES.has(failure.code) || failure.code === 'FORWARD_URL_FORBIDDEN'
    if (gate) this.breakers?.record(key, !failure ? 'success' : BREAKER_FAILURES.has(failure.code) ? 'failure' : sent ? 'success' : 'neutral')
    if (limit && this.rateLimiter && failure?.retryAfterMs !== undefined && seen.status !== undefined) {
      await this.rateLimiter.block(key, limit, failure.retryAfterMs).catch(() => {})
    }
    return { failure, sent, destination, key, startedAt: sentAt, durationMs, status: seen.status, responseBody: seen.body }
  }

  private async send(item: ForwardItem, seen: Seen, signal: AbortSignal | undefined): Promise<PipelineError | undefined> {
    const { event, tool } = item
    if (!tool.forwardUrl || !URL.canParse(tool.forwardUrl)) {
      return new PipelineError('permanent', 'FORWARD_URL_MISSING',
        `tool "${tool.id}" has no valid forward_url, so event "${event.id}" cannot be forwarded; set forward_url or use processing_mode "store"`)
    }
    const url = new URL(tool.forwardUrl)
    const owner = guardKey(item)
    const busy = (noSlot: NoSlot, limit: number, where: string) => {
      if (noSlot !== 'over-share') {
        return new PipelineError('transient', 'DESTINATION_BUSY',
          `forward of event "${event.id}" to tool "${tool.id}": all ${limit} requests to ${where} are still open after ` +
          `${this.slotWaitMs} ms; the event is retried later — check that the destination answers`, { retryAfterMs: this.timeoutMs })
      }
      // it answers, slowly: come back when the waiters ahead may have gone (as long as the oldest has waited, and
      // a jitter as long again), without spending a retry
      const waitedMs = Math.max(this.slotWaitMs, Date.now() - (this.waiters.get(owner)?.[0]?.since ?? Date.now()), 1)
      const retryAfterMs = Math.round(waitedMs + Math.random() * waitedMs)
      return new PipelineError('transient', 'DESTINATION_BUSY',
        `forward of event "${event.id}" to destination "${item.destinationId ?? tool.id}" of tool "${tool.id}": ${this.perDestination} of its ` +
        `requests already wait for a slot of ${where}, which answers slowly; the event is parked for ${retryAfterMs} ms without spending a retry`,
        { retryAfterMs, deferred: true })
    }
    const max = item.maxConcurrency
    // a destination's own limit first, so its waiters never hold a slot of the origin others share
    const releaseDestination = max === undefined ? () => {} : await this.acquire(`destination:${owner}`, owner, max, false, signal)
    if (typeof releaseDestination === 'string') return busy(releaseDestination, max as number, `destination "${item.destinationId ?? tool.id}"`)
    const release = await this.acquire(url.origin, owner, this.perDestination, true, signal)
    if (typeof release === 'string') {
      releaseDestination()
      return busy(release, this.perDestination, url.origin)
    }
    try {
      return await this.post(url, item, seen)
    } finally {
      release()
      releaseDestination()
    }
  }

  private async post(url: URL, item: ForwardItem, seen: Seen): Promise<PipelineError | undefined> {
    const { event, tool } = item
    // one Buffer for the signatures and the socket: a string would be encoded to UTF-8 once for each of them
    const body = Buffer.from(item.body ?? (item.transformed === undefined ? item.eventJson ?? JSON.stringify(event)
      : JSON.stringify({ ...event, transformed: item.transformed })))
    const timeoutMs = item.timeoutMs ?? this.timeoutMs
    const outcome = await this.dispatch(url, requestHeaders(url, item, body), body, timeoutMs, item.timeoutMs !== undefined, seen)
    return this.judge(outcome, url, `forward of event "${event.id}" to tool "${tool.id}"`, timeoutMs)
  }

  // undici's dispatch with a handler of our own: no response stream, no AbortSignal, no async resource per
  // request (request() costs them all); it follows no redirect (that needs its redirect interceptor), so a 3xx
  // comes back as it is. Resolves with the status, or the error that ended the request; never rejects
  private dispatch(url: URL, headers: Record<string, string>, body: Buffer, timeoutMs: number, ownTimeouts: boolean, seen: Seen): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let controller: Dispatcher.DispatchController | undefined
      let status: number | undefined
      let retryAfter: string | undefined
      let timedOut = false
      let done = false
      const head: Buffer[] = []
      let size = 0
      const finish = (error?: unknown) => {
        if (done) return
        done = true
        clearTimeout(timer)
        this.inFlight.delete(cut)
        // once a response came, its status decides, even when its body was cut short (the head read so far is kept)
        if (status !== undefined) {
          seen.status = status
          seen.body = Buffer.concat(head).subarray(0, BODY_HEAD_BYTES).toString('utf8')
          resolve({ status, retryAfter })
        } else {
          resolve({ error, timedOut })
        }
      }
      // ends the request now (time limit or close()); one that has not reached a socket yet is aborted when it does
      const cut = (reason: Error) => {
        if (done) return
        controller?.abort(reason)
        finish(reason)
      }
      // a strongly held timer, not AbortSignal.timeout(): Node 20 can collect such a signal before it fires
      // (nodejs/node#57736), leaving the request hanging for ever
      const timer = setTimeout(() => { timedOut = true; cut(new Error(`no response within ${timeoutMs} ms`)) }, timeoutMs)
      // a guard, not work: the request's socket keeps the process alive while it is open
      timer.unref()
      this.inFlight.add(cut)
      seen.sentAt = Date.now()
      try {
        this.agent.dispatch({
          origin: url.origin, path: `${url.pathname}${url.search}`, method: 'POST', headers, body,
          ...(ownTimeouts ? { headersTimeout: timeoutMs, bodyTimeout: timeoutMs } : {}),
        }, {
          onRequestStart: (c) => {
            controller = c
            if (done) c.abort(new Error('the forward ended before its request started'))
          },
          onResponseStart: (_c, statusCode, responseHeaders) => {
            if (statusCode < 200) return // 1xx: informational, the response follows
            status = statusCode
            const value = responseHeaders['retry-after']
            retryAfter = Array.isArray(value) ? value[0] : value
          },
          onResponseData: (c, chunk) => {
            if (size < BODY_HEAD_BYTES) head.push(chunk)
            size += chunk.length
            // the rest is read (bounded) so the connection goes back to the pool; past 64 KiB it is closed instead
            if (size > BODY_READ_BYTES) { c.abort(new Error('response body over 64 KiB')); finish() }
          },
          onResponseEnd: () => finish(),
          onResponseError: (_c, err) => finish(err),
        })
      } catch (err) {
        finish(err)
      }
    })
  }

  // what an attempt's outcome means: undefined for a 2xx, else the error the pipeline retries or dead-letters
  private judge(outcome: Outcome, url: URL, where: string, timeoutMs: number): PipelineError | undefined {
    if ('error' in outcome) {
      const err = outcome.error
      if (err instanceof EgressRefusedError || (err as { code?: unknown })?.code === 'FORWARD_URL_FORBIDDEN') {
        return new PipelineError('permanent', 'FORWARD_URL_FORBIDDEN',
          `${where} refused: ${(err as Error).message}; use a public destination, or allow it with FORWARD_ALLOW_PRIVATE (true or a CIDR list)`, { cause: err })
      }
      // undici refuses to build the request (a header value with a character HTTP cannot carry, such as a control
      // character or one above U+00FF): nothing went out, and the same request would be refused on every retry
      if (networkCode(err) === 'UND_ERR_INVALID_ARG') {
        return new PipelineError('permanent', 'FORWARD_REQUEST_INVALID',
          `${where} could not be sent: ${(err as Error).message}; a header value may hold only tabs and characters U+0020–U+007E and U+0080–U+00FF — fix the tool's or destination's headers`, { cause: err })
      }
      if (this.closing) {
        return new PipelineError('transient', 'SINK_CLOSED', `${where} was cut off by ForwardSink.close(); it is retried on redelivery`, { cause: err })
      }
      if (outcome.timedOut || networkCode(err) === 'UND_ERR_HEADERS_TIMEOUT') {
        return new PipelineError('transient', 'DESTINATION_TIMEOUT',
          `${where} got no response from ${safeUrl(url)} within ${timeoutMs} ms; it is retried — check the destination or raise timeoutMs`, { cause: err })
      }
      return new PipelineError('transient', 'DESTINATION_UNREACHABLE',
        `${where} could not reach ${safeUrl(url)} (${networkCode(err) ?? 'connection failed'}); it is retried — check the destination is up and the URL is right`, { cause: err })
    }
    const { status, retryAfter } = outcome
    if (status >= 200 && status < 300) return undefined
    const got = `${where} got HTTP ${status} from ${safeUrl(url)}`
    const after = retryAfterMs(retryAfter ?? null, Date.now())
    const retry = after === undefined ? {} : { retryAfterMs: after }
    if (status === 429 || status === 425) {
      return new PipelineError('transient', 'DESTINATION_429', `${got}; it is retried${after === undefined ? '' : ` after ${after} ms (Retry-After)`}`, retry)
    }
    if (status === 408) return new PipelineError('transient', 'DESTINATION_TIMEOUT', `${got}; it is retried`, retry)
    if (status >= 300 && status < 400) {
      return new PipelineError('permanent', 'DESTINATION_REDIRECT', `${got} (a redirect); set the tool's forward URL to the final address`)
    }
    if (status >= 400 && status < 500) {
      return new PipelineError('permanent', 'DESTINATION_4XX', `${got}; check the tool's forward URL and that the receiver accepts the request and its signature`)
    }
    return new PipelineError('transient', 'DESTINATION_5XX', `${got}; it is retried`, retry)
  }

  // a small semaphore per origin (and per destination with a maxConcurrency): the bulkhead that keeps one slow
  // destination from starving the others. With `shared` (an origin's), `owner` (the destination) may hold all but
  // one of its slots, so a destination that shares the origin finds one at once, and a freed slot goes to the
  // waiter whose owner holds the fewest. Resolves with the release, or why no slot came
  private async acquire(key: string, owner: string, limit: number, shared: boolean, signal?: AbortSignal): Promise<(() => void) | NoSlot> {
    if (signal?.aborted) return 'aborted'
    let slots = this.slots.get(key)
    if (!slots) this.slots.set(key, (slots = { active: 0, held: new Map(), waiting: [], lastReleaseAt: Date.now() }))
    const s = slots
    const ownerMax = shared && limit > 1 ? limit - 1 : limit
    const mayTake = (o: string) => s.active < limit && (s.held.get(o) ?? 0) < ownerMax
    const take = (o: string) => { s.held.set(o, (s.held.get(o) ?? 0) + 1) }
    if (mayTake(owner)) {
      s.active++
      take(owner)
    } else {
      const mine = this.waiters.get(owner) ?? []
      // the destination already has its share of waiters and they move slowly: this one would only hold the
      // pipeline's concurrency (and the source's credit) that other destinations need
      if (mine.length >= this.perDestination && this.isSlow(owner, mine)) return 'over-share'
      const noSlot = await new Promise<NoSlot | undefined>((resolve) => {
        let timer: NodeJS.Timeout | undefined
        const leave = () => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', aborted)
          const i = s.waiting.indexOf(waiter)
          if (i >= 0) s.waiting.splice(i, 1)
          const j = mine.indexOf(waiter)
          if (j >= 0) mine.splice(j, 1)
          if (mine.length === 0 && this.waiters.get(owner) === mine) this.waiters.delete(owner)
        }
        const waited = () => {
          if (Date.now() - waiter.since >= this.slotWaitMs) this.slowUntil.set(owner, Date.now() + this.slotWaitMs)
        }
        const waiter: Waiter = { owner, since: Date.now(), grant: () => { waited(); leave(); resolve(undefined) } }
        const giveUp = (why: NoSlot) => { waited(); leave(); resolve(why) }
        const aborted = () => giveUp('aborted')
        // give up on a destination that stalls (no request finished for slotWaitMs); a busy one that keeps
        // answering is waited for by its first waiters, so their events are not parked for nothing, while the
        // others go (parked) after slotWaitMs. An attempt out of time gives up at once: its failure is decided,
        // and a request sent after that would go again with its retry
        const check = () => {
          const idleMs = Date.now() - s.lastReleaseAt
          if (idleMs >= this.slotWaitMs) return giveUp('stalled')
          if (mine.indexOf(waiter) >= this.perDestination) return giveUp('over-share')
          timer = setTimeout(check, this.slotWaitMs - idleMs)
        }
        timer = setTimeout(check, this.slotWaitMs)
        signal?.addEventListener('abort', aborted, { once: true })
        s.waiting.push(waiter)
        mine.push(waiter)
        this.waiters.set(owner, mine)
      })
      if (noSlot) return noSlot
    }
    let released = false
    return () => {
      if (released) return
      released = true
      s.lastReleaseAt = Date.now()
      const left = (s.held.get(owner) ?? 1) - 1
      if (left === 0) s.held.delete(owner)
      else s.held.set(owner, left)
      // hand the slot over (active stays the same) to the first waiter of the owner holding the fewest
      let next: Waiter | undefined
      for (const w of s.waiting) {
        if ((s.held.get(w.owner) ?? 0) < ownerMax && (!next || (s.held.get(w.owner) ?? 0) < (s.held.get(next.owner) ?? 0))) next = w
      }
      if (next) {
        take(next.owner)
        next.grant()
      } else if (--s.active === 0) {
        this.slots.delete(key)
      }
    }
  }

  // whether `owner`'s waiters move slowly: its oldest has waited slotWaitMs, or one did lately
  private isSlow(owner: string, mine: readonly Waiter[]): boolean {
    const now = Date.now()
    if (mine[0] && now - mine[0].since >= this.slotWaitMs) return true
    const until = this.slowUntil.get(owner)
    if (until !== undefined && until <= now) this.slowUntil.delete(owner)
    return until !== undefined && until > now
  }

  /** Aborts requests still in flight (they fail with transient `SINK_CLOSED`); a second call returns the same promise. */
  close(): Promise<void> {
    this.closing ??= Promise.resolve().then(() => {
      const closed = new Error('ForwardSink.close()')
      for (const cut of [...this.inFlight]) cut(closed)
    }).then(() => this.agent.destroy())
    return this.closing
  }
}
