import type { Redis } from 'ioredis'
import { validateStreamEvent, type StreamEvent } from '../core/event.js'
import { entryFields } from '../core/stream-entry.js'
import type { DeliverySeen } from './keys.js'
import { redisScript, runScript } from './redis-script.js'

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
  /**
   * The caller checked the event with `validateStreamEvent` already (ingest does, to answer 400): the XADD does
   * not check it a second time. @defaultValue false
   */
  readonly validated?: boolean
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

/**
 * A stream entry's fields, read as `[name, value, name, value, …]`, as a record.
 *
 * @example
 * toRecord(['tool_id', 'gh', 'payload', '{}']) // { tool_id: 'gh', payload: '{}' }
 */
export function toRecord(fields: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i] as string] = fields[i + 1] as string
  return out
}

// an XINFO reply's `[name, value, …]` as a record (empty when Redis answered something else)
const pairs = (list: unknown): Record<string, unknown> => (Array.isArray(list) ? toRecord(list) : {})

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

// the delivery's field in one of its five hashes, else set it in the newest and XADD, atomically; a script that
// is refused (OOM, no connection) writes nothing. A seen delivery returns {its stored value}. The field comes as
// hex and is stored as its 12 bytes: with one Buffer among its arguments ioredis would copy the whole command,
// 10 KB payload included, into a new Buffer (the ingest bench scenario, 2 alternating pairs: 212 / 214 against
// 201 / 205 µs of CPU per request)
const ADD_IF_FIRST = redisScript(`local field = (string.gsub(ARGV[1], '%x%x', function(h) return string.char(tonumber(h, 16)) end))
for i = 1, 5 do
  local seen = redis.call('HGET', KEYS[i], field)
  if seen then return {seen} end
end
redis.call('HSET', KEYS[1], field, ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return redis.call('XADD', KEYS[6], unpack(ARGV, 4))`)

// One script, so that nothing runs between reading the groups and trimming: a group created at 0 or moved back
// (XGROUP SETID) between a separate read and XTRIM would lose the entries it still needs. Ids are compared and
// incremented as decimal text, since stream ids go up to 2^64 and Lua numbers are doubles.
const TRIM_SAFE = redisScript(`local stream = KEYS[1]
local keep = tonumber(ARGV[1])
if redis.call('XLEN', stream) == 0 then return 0 end
local function cmp_num(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function cmp(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  local c = cmp_num(am, bm)
  if c ~= 0 then return c end
  return cmp_num(as, bs)
end
local function incr(s)
  local i = #s
  while i > 0 and string.sub(s, i, i) == '9' do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #s) end
  return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) .. string.rep('0', #s - i)
end
local function next_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq == '18446744073709551615' then return incr(ms) .. '-0' end
  return ms .. '-' .. incr(seq)
end
local floor = nil
local function lower(id) if floor == nil or cmp(id, floor) < 0 then floor = id end end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  lower(next_id(info['last-delivered-id']))
  if info['pending'] > 0 then
    local oldest = redis.call('XPENDING', stream, info['name'])[2]
    if oldest then lower(oldest) end
  end
end
if keep > 0 then
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', keep)
  if #newest < keep then return 0 end
  lower(newest[#newest][1])
end
if floor == nil then return 0 end
if ARGV[2] ~= '' then lower(ARGV[2]) end
return redis.call('XTRIM', stream, 'MINID', floor)`)

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

  private xaddHead(options: Pick<AddOptions, 'maxLen'>): (string | number)[] {
    const args: (string | number)[] = [this.stream]
    if (options.maxLen !== undefined) {
      if (!Number.isInteger(options.maxLen) || options.maxLen < 1) {
        throw new RangeError(`StreamClient.add: "maxLen" must be a positive integer; got ${options.maxLen}`)
      }
      args.push('MAXLEN', '~', options.maxLen)
    }
    args.push('*')
    return args
  }

  // a v2 entry: the header as separate fields, the payload's text in field `payload` (see entryFields)
  private xaddArgs(event: StreamEvent, options: AddOptions): (string | number | Buffer)[] {
    if (!options.validated) validateStreamEvent(event, `XADD to stream ${this.stream}`)
    const args: (string | number | Buffer)[] = [...this.xaddHead(options), ...entryFields(event, options.payloadJson)]
    if (options.traceparent) args.push('traceparent', options.traceparent)
    return args
  }

  /**
   * Appends one event as a v2 entry (header fields beside the raw `payload`) and returns the entry id. Throws a permanent PipelineError
   * (`INVALID_EVENT`) naming the field when the event does not have the StreamEvent shape.
   */
  async add(event: StreamEvent, options: AddOptions = {}): Promise<string> {
    return (await this.redis.call('XADD', ...this.xaddArgs(event, options))) as string
  }

  /**
   * Appends the event only if its delivery is not in the "delivery seen" set yet (`deliverySeen` says where),
   * recording it there in the same atomic script: one round trip for ingest's "delivery seen" check and the
   * XADD. Returns the entry id, or `null` when the delivery was seen (a redelivery: nothing appended).
   */
  async addIfFirst(seen: DeliverySeen, event: StreamEvent, options: AddOptions = {}): Promise<string | null> {
    const result = await this.addOnce(seen, '1', event, options)
    return result.streamId
  }

  /**
   * Like `addIfFirst`, storing `seenValue` for the delivery (e.g. a short hash of the body); on a re-send it
   * resolves with the value stored by the first one, so the caller can tell a plain re-send from a different body.
   *
   * @example
   * const r = await stream.addOnce(deliverySeen(keys, 'gh-main', 'd-1', 86400), bodyHash, event)
   * if (r.streamId === null && r.seenValue !== bodyHash) log.warn('same delivery id, different body')
   */
  async addOnce(seen: DeliverySeen, seenValue: string, event: StreamEvent, options: AddOptions = {}):
    Promise<{ readonly streamId: string; readonly seenValue?: undefined } | { readonly streamId: null; readonly seenValue: string }> {
    const [stream, ...rest] = this.xaddArgs(event, options)
    const id = await runScript(this.redis, ADD_IF_FIRST, [...seen.buckets, stream as string],
      [seen.field.toString('hex'), seenValue, seen.expireAtSeconds, ...rest])
    return Array.isArray(id) ? { streamId: null, seenValue: String(id[0]) } : { streamId: id as string }
  }

  /**
   * Appends a stream entry whose field `event` is `rawEvent` byte for byte, with field `retry_count` set to
   * `event.retry_count` (the source reads it over the one inside the JSON). For DLQ rows kept raw: their JSON is
   * not re-serialized. `event` is the entry parsed (for validation and, when partitioned, routing).
   */
  async addRaw(event: StreamEvent, rawEvent: Buffer, options: Omit<AddOptions, 'traceparent' | 'payloadJson'> = {}): Promise<string> {
    validateStreamEvent(event, `XADD to stream ${this.stream}`)
    return (await this.redis.call('XADD', ...this.xaddHead(options), 'event', rawEvent, 'retry_count', String(event.retry_count))) as string
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
   * last-delivered id (`XTRIM MINID`). With `keep`, it also keeps at least that many newest entries; with
   * `floor`, every entry from that id on (e.g. what a replaying worker's snapshot does not cover yet).
   * Returns how many entries were removed. It is one Lua script (one key, so one slot on a Cluster): a group
   * created or moved back while it runs cannot lose entries to it.
   */
  async trimSafe(options: { keep?: number; floor?: string } = {}): Promise<number> {
    return (await runScript(this.redis, TRIM_SAFE, [this.stream], [Math.max(0, options.keep ?? 0), options.floor ?? ''])) as number
  }
}
