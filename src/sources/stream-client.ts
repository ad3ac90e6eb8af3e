import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import { validateStreamEvent, type StreamEvent } from '../core/event.js'

/** The subset of ioredis this module uses (a `Redis` instance fits; so does a Cluster client). */
export type RedisClient = Pick<Redis, 'call' | 'pipeline'> & { readonly status: string; quit(): Promise<unknown>; disconnect(): void }

/** Options of one XADD. */
export interface AddOptions {
  /** W3C traceparent to store with the entry (field `traceparent`), so processing joins the ingest trace. */
  readonly traceparent?: string
  /** Approximate cap on the stream's length (`MAXLEN ~ N`); unset means no trimming. */
  readonly maxLen?: number
  /**
   * The payload's JSON text exactly as received, already known to parse to `event.payload` (ingest parsed it
   * to normalize the delivery): spliced into the entry instead of serializing the payload again, which is
   * most of an XADD's CPU for a 10 KB webhook. Pass UTF-8 bytes or a string; never text that was not parsed.
   */
  readonly payloadJson?: Buffer | string
}

/** A consumer in a group, as XINFO CONSUMERS reports it. */
export interface ConsumerInfo {
  readonly name: string
  readonly pending: number
  readonly idleMs: number
}

/** A consumer group, as XINFO GROUPS and XINFO CONSUMERS report it. */
export interface GroupInfo {
  readonly name: string
  readonly pending: number
  /** Entries not yet delivered to the group; `null` when Redis cannot tell (after a trim or XDEL). */
  readonly lag: number | null
  readonly lastDeliveredId: string
  readonly consumers: readonly ConsumerInfo[]
}

/** Stream facts for `hookstream stream info`, health and metrics. */
export interface StreamInfo {
  readonly stream: string
  readonly length: number
  readonly firstId: string | null
  readonly lastId: string | null
  readonly groups: readonly GroupInfo[]
}

function pairs(list: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (!Array.isArray(list)) return out
  for (let i = 0; i + 1 < list.length; i += 2) out[String(list[i])] = list[i + 1]
  return out
}

/** One stream entry as XREADGROUP / XRANGE / XAUTOCLAIM return it (fields `null` when it was deleted). */
export type StreamEntry = [id: string, fields: string[] | null]

/**
 * The entries of one stream from an XREAD/XREADGROUP reply, in either RESP2 shape (`[[stream, entries]]`) or
 * RESP3's map shape as ioredis passes it on for `call()` (`[stream, entries]`).
 */
export function entriesOfReadReply(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply) || reply.length === 0) return []
  if (typeof reply[0] === 'string') return (reply[1] as StreamEntry[] | undefined) ?? []
  return ((reply[0] as [string, StreamEntry[]] | undefined)?.[1]) ?? []
}

// SET NX then XADD, atomically; a script that is refused (OOM, no connection) writes nothing
// SET … NX GET: the key's earlier value when it existed (a re-send; nothing appended), else the new entry id
const ADD_IF_FIRST = `local seen = redis.call('SET', KEYS[1], ARGV[2], 'NX', 'GET', 'EX', ARGV[1])
if seen then return {seen} end
return redis.call('XADD', KEYS[2], unpack(ARGV, 3))`
const ADD_IF_FIRST_SHA = createHash('sha1').update(ADD_IF_FIRST).digest('hex')

/** Compares two stream ids (`ms-seq`). */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-')
  const [bm = '0', bs = '0'] = b.split('-')
  const ms = BigInt(am) - BigInt(bm)
  if (ms !== 0n) return ms < 0n ? -1 : 1
  const seq = BigInt(as) - BigInt(bs)
  return seq === 0n ? 0 : seq < 0n ? -1 : 1
}

/**
 * Typed access to one Redis stream: add events, ensure a consumer group, ack, inspect, trim.
 * It holds no connection of its own; pass the ioredis client you already have.
 *
 * @example
 * const stream = new StreamClient({ redis, stream: 'webhook_events' })
 * await stream.ensureGroup('webhook_workers')
 * const id = await stream.add(event, { maxLen: 1_000_000 })
 */
export class StreamClient {
  readonly redis: RedisClient
  readonly stream: string

  constructor(options: { redis: RedisClient; stream: string }) {
    if (!options.stream) throw new RangeError('StreamClient: "stream" must be a non-empty stream name')
    this.redis = options.redis
    this.stream = options.stream
  }

  private xaddArgs(event: StreamEvent, options: AddOptions): (string | number | Buffer)[] {
    validateStreamEvent(event, `XADD to stream ${this.stream}`)
    const args: (string | number | Buffer)[] = [this.stream]
    if (options.maxLen !== undefined) {
      if (!Number.isInteger(options.maxLen) || options.maxLen < 1) {
        throw new RangeError(`StreamClient.add: "maxLen" must be a positive integer; got ${options.maxLen}`)
      }
      args.push('MAXLEN', '~', options.maxLen)
    }
    args.push('*', 'event', options.payloadJson === undefined ? JSON.stringify(event) : spliceEntry(event, options.payloadJson))
    if (options.traceparent) args.push('traceparent', options.traceparent)
    return args
  }

  /**
   * Appends one event (field `event` = its JSON) and returns the entry id. Throws a permanent PipelineError
   * (`INVALID_EVENT`) naming the field when the event does not have the StreamEvent shape.
   */
  async add(event: StreamEvent, options: AddOptions = {}): Promise<string> {
    return (await this.redis.call('XADD', ...this.xaddArgs(event, options))) as string
  }

  /**
   * Appends the event only if `seenKey` was not set yet, setting it (with `ttlSeconds`) in the same atomic
   * script: one round trip for ingest's "delivery seen" check and the XADD. Returns the entry id, or `null`
   * when the key existed (a redelivery: nothing appended).
   */
  async addIfFirst(seenKey: string, ttlSeconds: number, event: StreamEvent, options: AddOptions = {}): Promise<string | null> {
    const result = await this.addOnce(seenKey, ttlSeconds, '1', event, options)
    return result.streamId
  }

  /**
   * Like `addIfFirst`, storing `seenValue` in `seenKey` (e.g. a hash of the body); on a re-send it resolves with
   * the value stored by the first one, so the caller can tell a plain re-send from a different body.
   *
   * @example
   * const r = await stream.addOnce(key, 86400, `sha256:${hash}`, event)
   * if (r.streamId === null && r.seenValue !== `sha256:${hash}`) log.warn('same delivery id, different body')
   */
  async addOnce(seenKey: string, ttlSeconds: number, seenValue: string, event: StreamEvent, options: AddOptions = {}):
    Promise<{ readonly streamId: string; readonly seenValue?: undefined } | { readonly streamId: null; readonly seenValue: string }> {
    const [stream, ...rest] = this.xaddArgs(event, options)
    const args = [2, seenKey, stream as string, ttlSeconds, seenValue, ...rest]
    let id: unknown
    try {
      id = await this.redis.call('EVALSHA', ADD_IF_FIRST_SHA, ...args)
    } catch (err) {
      // first call on this server (or after SCRIPT FLUSH / a restart): send the script itself once
      if (!/NOSCRIPT/.test((err as Error)?.message ?? '')) throw err
      id = await this.redis.call('EVAL', ADD_IF_FIRST, ...args)
    }
    return Array.isArray(id) ? { streamId: null, seenValue: String(id[0]) } : { streamId: id as string }
  }

  /**
   * Appends a stream entry whose field `event` is `rawEvent` byte for byte, with field `retry_count` set to
   * `event.retry_count` (the source reads it over the one inside the JSON). For DLQ rows kept raw: their JSON is
   * not re-serialized. `event` is the entry parsed (for validation and, when partitioned, routing).
   */
  async addRaw(event: StreamEvent, rawEvent: Buffer, options: Omit<AddOptions, 'traceparent' | 'payloadJson'> = {}): Promise<string> {
    const args = this.xaddArgs({ ...event, payload: null }, options).slice(0, -2)
    return (await this.redis.call('XADD', ...args, 'event', rawEvent, 'retry_count', String(event.retry_count))) as string
  }

  /** Appends many events in one pipeline and returns their entry ids in order. All are validated first. */
  async addMany(events: readonly StreamEvent[], options: Omit<AddOptions, 'traceparent' | 'payloadJson'> = {}): Promise<string[]> {
    if (events.length === 0) return []
    const argLists = events.map((e) => this.xaddArgs(e, options))
    const pipe = this.redis.pipeline()
    for (const args of argLists) pipe.call('XADD', ...args)
    const results = (await pipe.exec()) ?? []
    return results.map(([err, id], i) => {
      if (err) throw new Error(`XADD of event ${events[i]?.id} to stream ${this.stream} failed: ${err.message}`, { cause: err })
      return id as string
    })
  }

  /**
   * Creates consumer group `group` (and the stream, MKSTREAM) starting at `startId`; an existing group is fine.
   * Returns true when it created the group.
   */
  async ensureGroup(group: string, startId = '0'): Promise<boolean> {
    try {
      await this.redis.call('XGROUP', 'CREATE', this.stream, group, startId, 'MKSTREAM')
      return true
    } catch (err) {
      if (/BUSYGROUP/.test((err as Error).message)) return false
      // a full Redis refuses XGROUP CREATE even when the group exists; that is no reason to fail
      if (/^OOM /.test((err as Error).message) && (await this.info()).groups.some((g) => g.name === group)) return false
      throw err
    }
  }

  /** Acks many entry ids with one XACK; returns how many were pending. */
  async ack(group: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0
    return (await this.redis.call('XACK', this.stream, group, ...ids)) as number
  }

  /** Length, first/last id and, per group, pending, lag, last-delivered id and consumers. A missing stream reads as empty. */
  async info(): Promise<StreamInfo> {
    let stream: Record<string, unknown>
    try {
      stream = pairs(await this.redis.call('XINFO', 'STREAM', this.stream))
    } catch (err) {
      if (/no such key/i.test((err as Error).message)) return { stream: this.stream, length: 0, firstId: null, lastId: null, groups: [] }
      throw err
    }
    const first = stream['first-entry'] as [string, unknown] | null
    const last = stream['last-entry'] as [string, unknown] | null
    const groupList = ((await this.redis.call('XINFO', 'GROUPS', this.stream)) as unknown[]).map(pairs)
    const pipe = this.redis.pipeline()
    for (const g of groupList) pipe.call('XINFO', 'CONSUMERS', this.stream, String(g.name))
    const consumerLists = (await pipe.exec()) ?? []
    const groups = groupList.map((g, i): GroupInfo => {
      const [err, list] = consumerLists[i] ?? [null, []]
      if (err) throw err
      return {
        name: String(g.name),
        pending: Number(g.pending),
        lag: g.lag === null || g.lag === undefined ? null : Number(g.lag),
        lastDeliveredId: String(g['last-delivered-id']),
        consumers: (list as unknown[]).map(pairs).map((c) => ({
          name: String(c.name), pending: Number(c.pending), idleMs: Number(c.idle),
        })),
      }
    })
    return { stream: this.stream, length: Number(stream.length), firstId: first?.[0] ?? null, lastId: last?.[0] ?? null, groups }
  }

  /** Plain approximate trim (`XTRIM MAXLEN ~ maxLen`). It can drop entries a group has not read: prefer `trimSafe`. */
  async trimMaxLen(maxLen: number): Promise<number> {
    return (await this.redis.call('XTRIM', this.stream, 'MAXLEN', '~', maxLen)) as number
  }

  /**
   * Trims only what every group is done with: entries older than each group's oldest pending entry and its
   * last-delivered id (`XTRIM MINID`). With `keep`, it also keeps at least that many newest entries.
   * Returns how many entries were removed.
   */
  async trimSafe(options: { keep?: number } = {}): Promise<number> {
    const info = await this.info()
    if (info.length === 0) return 0
    let floor: string | null = null
    const lower = (id: string) => { if (floor === null || compareStreamIds(id, floor) < 0) floor = id }
    for (const g of info.groups) {
      lower(g.lastDeliveredId === '0-0' ? '0-1' : nextId(g.lastDeliveredId))
      if (g.pending > 0) {
        const summary = (await this.redis.call('XPENDING', this.stream, g.name)) as [number, string | null, string | null, unknown]
        if (summary[1]) lower(summary[1])
      }
    }
    if (options.keep !== undefined && options.keep > 0) {
      const newest = (await this.redis.call('XREVRANGE', this.stream, '+', '-', 'COUNT', options.keep)) as [string, unknown][]
      const oldestKept = newest[newest.length - 1]?.[0]
      if (oldestKept && newest.length >= options.keep) lower(oldestKept)
      else return 0
    }
    // no group at all: nobody will ever read these, but nobody said they may go either; keep them
    if (floor === null) return 0
    return (await this.redis.call('XTRIM', this.stream, 'MINID', floor)) as number
  }
}

// the event's JSON with the payload's own text in place of a second serialization: `{…,"payload":<text>}`
function spliceEntry(event: StreamEvent, payloadJson: Buffer | string): Buffer {
  const { payload: _, ...rest } = event
  const head = JSON.stringify({ ...rest, payload: 0 }) // payload last, so the text ends with `"payload":0}`
  return Buffer.concat([Buffer.from(head.slice(0, -2)), typeof payloadJson === 'string' ? Buffer.from(payloadJson) : payloadJson, CLOSE_BRACE])
}
const CLOSE_BRACE = Buffer.from('}')

function nextId(id: string): string {
  const [ms = '0', seq = '0'] = id.split('-')
  return `${ms}-${BigInt(seq) + 1n}`
}
