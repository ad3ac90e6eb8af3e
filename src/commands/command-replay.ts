import type { Redis } from 'ioredis'
import { compareStreamIds, toRecord } from '../sources/stream-client.js'
import { commandDeadLetteredKey, commandDlqStream, commandSnapshotKey, deadLetteredMember, ONLY_WORKER_FIELD } from './command-log.js'
import { decodeCommandPayload } from './command-dispatch.js'
import type { CommandContext, ResolvedReplay, WorkerDefinition, WorkerLogger } from './command-worker.js'

/** How far a replay got, as `info().replay` reports it. */
export interface ReplayProgress {
  /** Log entries read so far by the replay (handled, skipped or failed). */
  read: number
  /** Handlers that threw during the replay (counted and skipped; nothing is dead-lettered again). */
  failed: number
  /** Entries the worker dead-lettered, skipped without running their handler (a re-drive's copy is replayed instead). */
  deadLettered: number
  /** Whether it started from a snapshot. */
  fromSnapshot: boolean
  /** The id the replay runs up to (the group's last delivered id at start). */
  untilId: string | null
  done: boolean
}

/** What `replayCommandLog` needs. */
export interface ReplayRunOptions<S> {
  readonly redis: Redis
  readonly stream: string
  readonly worker: WorkerDefinition<S> & { readonly replay: ResolvedReplay<S> }
  readonly logger: WorkerLogger
  /** Aborting stops the replay between entries; the start then fails. */
  readonly signal: AbortSignal
  readonly progress: ReplayProgress
}

/** A worker's snapshot as stored: the last entry id its state includes, and the saved state. */
export interface CommandSnapshot {
  readonly last_id: string
  readonly state: unknown
  readonly saved_at: string
}

const PAGE = 500

// JSON.stringify's replacer that refuses what JSON turns into something else on load (a Map or Set into {}, a Date
// into a string, a class instance into a plain object): a snapshot of it would rebuild a different state
function keepsAsIs(worker: string): (this: unknown, key: string, value: unknown) => unknown {
  return function (this: unknown, key, value) {
    const raw = (this as Record<string, unknown>)[key]
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
      const proto = Object.getPrototypeOf(raw) as object | null
      if (proto !== Object.prototype && proto !== null) {
        const kind = (raw as object).constructor?.name || 'class instance'
        throw new TypeError(`worker "${worker}": its state holds a ${kind} at "${key}", which JSON does not keep (a snapshot of it ` +
          `loads as something else); give replay.save (state → plain objects, arrays, strings, numbers) and replay.load (back)`)
      }
    }
    return value
  }
}

/**
 * Saves a replaying worker's snapshot: its state (through `replay.save`) as of entry `lastId`, then forgets the
 * dead-lettered entries the snapshot covers (a replay from it never reads them). Throws a TypeError, and saves
 * nothing, when the saved state holds what JSON would not give back as it was (a Map, Set, Date, class instance).
 *
 * @example
 * await saveCommandSnapshot(redis, 'commands', worker, state, '1718000000000-3')
 */
export async function saveCommandSnapshot<S>(redis: Pick<Redis, 'call'>, stream: string,
  worker: WorkerDefinition<S> & { readonly replay: ResolvedReplay<S> }, state: S, lastId: string): Promise<void> {
  const snapshot: CommandSnapshot = { last_id: lastId, state: worker.replay.save(state), saved_at: new Date().toISOString() }
  await redis.call('SET', commandSnapshotKey(stream, worker.name), JSON.stringify(snapshot, keepsAsIs(worker.name)))
  await redis.call('ZREMRANGEBYLEX', commandDeadLetteredKey(stream, worker.name), '-', `[${deadLetteredMember(lastId)}`)
}

/**
 * Reads a worker's snapshot, or undefined when it has none.
 *
 * @example
 * (await loadCommandSnapshot(redis, 'commands', 'features'))?.last_id
 */
export async function loadCommandSnapshot(redis: Pick<Redis, 'call'>, stream: string, worker: string): Promise<CommandSnapshot | undefined> {
  const raw = (await redis.call('GET', commandSnapshotKey(stream, worker))) as string | null
  if (raw === null) return undefined
  let parsed: CommandSnapshot
  try {
    parsed = JSON.parse(raw) as CommandSnapshot
  } catch (err) {
    throw new Error(`snapshot ${commandSnapshotKey(stream, worker)} is not valid JSON (${(err as Error).message}); delete the key to replay the whole log`, { cause: err })
  }
  if (typeof parsed?.last_id !== 'string') {
    throw new Error(`snapshot ${commandSnapshotKey(stream, worker)} has no "last_id"; delete the key to replay the whole log`)
  }
  return parsed
}

async function pendingIds(redis: Redis, stream: string, group: string): Promise<Set<string>> {
  const ids = new Set<string>()
  let start = '-'
  for (;;) {
    const page = (await redis.call('XPENDING', stream, group, start, '+', PAGE)) as [string, ...unknown[]][]
    for (const [id] of page) ids.add(id)
    if (page.length < PAGE) return ids
    start = `(${page[page.length - 1]?.[0]}`
  }
}

async function lastDeliveredId(redis: Redis, stream: string, group: string): Promise<string> {
  const groups = (await redis.call('XINFO', 'GROUPS', stream)) as unknown[][]
  for (const g of groups) {
    const rec = toRecord(g.map(String))
    if (rec.name === group) return rec['last-delivered-id'] ?? '0-0'
  }
  return '0-0'
}

// the user's load, with the worker, the key and the way out named when it throws (say, on an older state's shape)
function loadState<S>(worker: WorkerDefinition<S> & { readonly replay: ResolvedReplay<S> }, stream: string, snapshot: CommandSnapshot): S {
  try {
    return worker.replay.load(snapshot.state)
  } catch (err) {
    throw new Error(`worker "${worker.name}": replay.load threw on snapshot ${commandSnapshotKey(stream, worker.name)} (entry ${snapshot.last_id}): ` +
      `${(err as Error)?.message ?? String(err)}; fix replay.load, or delete the key to replay the whole log`, { cause: err })
  }
}

// the entries of `page` the worker dead-lettered (as `deadLetteredMember`), from its record
async function deadLetteredIn(redis: Redis, stream: string, worker: string, page: readonly [string, string[]][]): Promise<Set<string>> {
  const [first] = page[0] ?? []
  const [last] = page[page.length - 1] ?? []
  if (first === undefined || last === undefined) return new Set()
  const members = (await redis.call('ZRANGEBYLEX', commandDeadLetteredKey(stream, worker),
    `[${deadLetteredMember(first)}`, `[${deadLetteredMember(last)}`)) as string[]
  return new Set(members)
}

/**
 * Rebuilds a worker's state on start (Petrock's replay): from its snapshot, or from `replay.fresh()`, it reads the
 * log after the snapshot up to the group's last delivered id and calls each handler with `isReplay: true`
 * (`execute` appends nothing). Entries still pending for the group are left out (the group delivers them live
 * next); pending ones a snapshot already includes are acked. Entries the worker dead-lettered are skipped without
 * running their handler (counted in `progress.deadLettered`): a command that crashed the process until it was
 * dead-lettered must not crash every start, and a re-driven one is applied through its copy on the log, once. A
 * throwing handler is counted in `progress.failed` and skipped. The replay reads at most `replay.maxEntries`
 * entries, in pages of 500, and reports `progress`.
 *
 * @example
 * const state = await replayCommandLog({ redis, stream: 'commands', worker, logger, signal, progress })
 */
export async function replayCommandLog<S>(options: ReplayRunOptions<S>): Promise<S> {
  const { redis, stream, worker, logger, signal, progress } = options
  const snapshot = await loadCommandSnapshot(redis, stream, worker.name)
  const state = snapshot ? loadState(worker, stream, snapshot) : worker.replay.fresh()
  progress.fromSnapshot = snapshot !== undefined
  const until = await lastDeliveredId(redis, stream, worker.name)
  progress.untilId = until
  const pending = await pendingIds(redis, stream, worker.name)
  // what the snapshot holds is done: a redelivery of it would apply it twice
  const covered = snapshot ? [...pending].filter((id) => compareStreamIds(id, snapshot.last_id) <= 0) : []
  if (covered.length > 0) await redis.call('XACK', stream, worker.name, ...covered)
  let start = snapshot ? `(${snapshot.last_id}` : '-'
  const execute = async () => ''
  let firstFailure = ''
  let firstDeadLetter = ''
  while (!signal.aborted && until !== '0-0') {
    const page = (await redis.call('XRANGE', stream, start, until, 'COUNT', PAGE)) as [string, string[]][]
    const deadLettered = await deadLetteredIn(redis, stream, worker.name, page)
    for (const [id, flat] of page) {
      if (progress.read >= worker.replay.maxEntries) {
        throw new Error(`worker "${worker.name}" replay read ${progress.read} entries of ${stream} and reached replay.maxEntries ` +
          `${worker.replay.maxEntries} before ${until}; save snapshots (replay.snapshotEvery) or raise replay.maxEntries`)
      }
      progress.read += 1
      if (pending.has(id)) continue
      const fields = toRecord(flat)
      const command = fields.command
      const route = command === undefined ? undefined : worker.routes.get(command)
      const onlyFor = fields[ONLY_WORKER_FIELD]
      if (!route || command === undefined || (onlyFor !== undefined && onlyFor !== worker.name)) continue
      if (deadLettered.has(deadLetteredMember(id))) {
        progress.deadLettered += 1
        if (progress.deadLettered === 1) firstDeadLetter = `the first entry ${id} (command "${command}")`
        continue
      }
      const context: CommandContext<S, unknown> = {
        worker: worker.name, command, payload: undefined, state, signal, attempt: 1, logger, execute, isReplay: true,
        message: { id, timestamp: new Date(Number(id.split('-')[0])), deliveryCount: 1 },
      }
      try {
        await route.handle({ ...context, payload: decodeCommandPayload(command, route, fields.payload, id) })
      } catch (err) {
        progress.failed += 1
        if (progress.failed === 1) firstFailure = `command "${command}" (entry ${id}): ${(err as Error)?.message ?? String(err)}`
      }
    }
    if (page.length < PAGE) break
    start = `(${page[page.length - 1]?.[0]}`
  }
  if (signal.aborted) throw new Error(`worker "${worker.name}" was stopped during its replay of ${stream} (${progress.read} entries read)`)
  if (progress.failed > 0) {
    logger.warn({ worker: worker.name, failed: progress.failed, read: progress.read },
      `worker "${worker.name}" replay: ${progress.failed} of ${progress.read} commands failed again and were skipped; the first: ${firstFailure}`)
  }
  if (progress.deadLettered > 0) {
    logger.warn({ worker: worker.name, deadLettered: progress.deadLettered, read: progress.read },
      `worker "${worker.name}" replay: skipped ${progress.deadLettered} dead-lettered command(s), ${firstDeadLetter}, ` +
      `without running them; to apply one, re-drive its dead letter in ${commandDlqStream(stream)} (\`hookstream commands dlq retry <id>\`)`)
  }
  progress.done = true
  return state
}
