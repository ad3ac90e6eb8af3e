import type { Redis } from 'ioredis'
import { toRecord } from '../sources/stream-client.js'
import { commandDlqStream, ONLY_WORKER_FIELD } from './command-log.js'

/** One dead-lettered command as the DLQ CLI and admin routes show it. */
export interface CommandDeadLetter {
  /** Entry id in `<stream>:dlq`. */
  readonly id: string
  readonly worker: string
  readonly command: string
  /** The payload's JSON text as it was on the log; null when the command had none. */
  readonly payload: string | null
  readonly error: string
  readonly error_code: string
  readonly error_kind: string
  /** The command's entry id on the log. */
  readonly stream_id: string
  readonly attempts: number
  readonly failed_at: string
}

/** Filters of `listCommandDeadLetters`. */
export interface CommandDlqQuery {
  /** Only this worker's dead letters. */
  readonly worker?: string
  /** Most entries returned (1–1000). @defaultValue 50 */
  readonly limit?: number
  /** Entries older than this DLQ entry id (the previous page's `next_cursor`). */
  readonly before?: string
}

const STREAM_ID = /^\d{1,20}-\d{1,20}$/
const SCAN_PAGE = 200
/** Most DLQ entries one listing reads; a worker filter that matches few of them ends the page there, with a cursor. */
const MAX_SCANNED = 10_000

function toDeadLetter(id: string, flat: readonly string[]): CommandDeadLetter {
  const f = toRecord(flat)
  return {
    id, worker: f.worker ?? '', command: f.command ?? '', payload: f.payload ? f.payload : null,
    error: f.error ?? '', error_code: f.error_code ?? '', error_kind: f.error_kind ?? '', stream_id: f.stream_id ?? '',
    attempts: Number(f.attempts ?? 0), failed_at: f.failed_at ?? '',
  }
}

/**
 * Checks a DLQ entry id from a user (CLI argument, URL); throws a RangeError saying what an id looks like.
 *
 * @example
 * commandDlqIdOf('1718000000000-0')
 */
export function commandDlqIdOf(raw: string | undefined): string {
  if (raw === undefined || !STREAM_ID.test(raw)) {
    throw new RangeError(`a command DLQ entry id looks like "1718000000000-0" (see \`hookstream commands dlq list\`); got ${JSON.stringify((raw ?? '').slice(0, 60))}`)
  }
  return raw
}

/**
 * Dead-lettered commands of a log, newest first, optionally of one worker, a page at a time. One call reads at most
 * 10000 DLQ entries: with a worker filter a page may hold fewer than `limit` entries and still have a `next_cursor`
 * (null only when the DLQ ends).
 *
 * @example
 * const { entries, next_cursor } = await listCommandDeadLetters(redis, 'commands', { worker: 'features', limit: 20 })
 */
export async function listCommandDeadLetters(redis: Pick<Redis, 'call'>, stream: string, query: CommandDlqQuery = {}):
  Promise<{ entries: CommandDeadLetter[]; next_cursor: string | null }> {
  const limit = query.limit ?? 50
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RangeError(`"limit" must be an integer from 1 to 1000; got ${query.limit}`)
  let end = query.before === undefined ? '+' : `(${commandDlqIdOf(query.before)}`
  const entries: CommandDeadLetter[] = []
  // a worker filter may skip many entries; read pages until the page is full or the stream ends, but not the whole
  // DLQ in one request: after MAX_SCANNED entries the page ends short, and its cursor goes on from there
  for (let scanned = 0; ; scanned += SCAN_PAGE) {
    const page = (await redis.call('XREVRANGE', commandDlqStream(stream), end, '-', 'COUNT', SCAN_PAGE)) as [string, string[]][]
    for (const [id, flat] of page) {
      const letter = toDeadLetter(id, flat)
      if (query.worker !== undefined && letter.worker !== query.worker) continue
      entries.push(letter)
      if (entries.length === limit) return { entries, next_cursor: id }
    }
    const last = page[page.length - 1]?.[0]
    if (page.length < SCAN_PAGE || last === undefined) return { entries, next_cursor: null }
    if (scanned + SCAN_PAGE >= MAX_SCANNED) return { entries, next_cursor: last }
    end = `(${last}`
  }
}

/**
 * One dead-lettered command, or undefined when there is no such DLQ entry.
 *
 * @example
 * await getCommandDeadLetter(redis, 'commands', '1718000000000-0')
 */
export async function getCommandDeadLetter(redis: Pick<Redis, 'call'>, stream: string, id: string): Promise<CommandDeadLetter | undefined> {
  const [entry] = (await redis.call('XRANGE', commandDlqStream(stream), commandDlqIdOf(id), commandDlqIdOf(id))) as [string, string[]][]
  return entry ? toDeadLetter(entry[0], entry[1]) : undefined
}

// removes the DLQ entry and appends its command in one step, only when this call removed it: two re-drives, or a
// re-drive and a discard, of one entry at once never put the command on the log twice (or after a discard)
const REDRIVE = `
if redis.call('XDEL', KEYS[2], ARGV[1]) == 0 then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))`

/**
 * Re-drives a dead-lettered command: appends it to the log again for its worker only (field `only_worker`; other
 * workers skip it) and removes the DLQ entry, in one script that appends only when it removed the entry. Returns
 * the new log entry id, or undefined when the DLQ entry does not exist (retried or discarded already).
 *
 * @example
 * const streamId = await retryCommandDeadLetter(redis, 'commands', '1718000000000-0')
 */
export async function retryCommandDeadLetter(redis: Pick<Redis, 'call'>, stream: string, id: string): Promise<{ letter: CommandDeadLetter; streamId: string } | undefined> {
  const letter = await getCommandDeadLetter(redis, stream, id)
  if (!letter) return undefined
  const fields = ['command', letter.command, ...(letter.payload === null ? [] : ['payload', letter.payload]), ONLY_WORKER_FIELD, letter.worker]
  const streamId = (await redis.call('EVAL', REDRIVE, 2, stream, commandDlqStream(stream), id, ...fields)) as string | null
  return streamId === null ? undefined : { letter, streamId }
}

/**
 * Removes a dead-lettered command for good. Returns it, or undefined when there is no such DLQ entry.
 *
 * @example
 * await discardCommandDeadLetter(redis, 'commands', '1718000000000-0')
 */
export async function discardCommandDeadLetter(redis: Pick<Redis, 'call'>, stream: string, id: string): Promise<CommandDeadLetter | undefined> {
  const letter = await getCommandDeadLetter(redis, stream, id)
  if (!letter) return undefined
  const removed = (await redis.call('XDEL', commandDlqStream(stream), id)) as number
  return removed === 1 ? letter : undefined
}
