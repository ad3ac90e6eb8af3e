import { Observable } from 'rxjs'
import type { Cluster, Redis } from 'ioredis'
import type { StreamMessage } from '../core/envelope.js'
import { readUnblocker } from './read-unblocker.js'
import { SourceMessage, type MessageOwner } from './source-message.js'
import { compareStreamIds, entriesOfReadReply, StreamClient, toRecord, type StreamEntry } from './stream-client.js'
import { positiveInteger } from '../core/positive-integer.js'

/** Options of `fromRedisStream`. */
export interface FromRedisStreamOptions {
  /** Your ioredis client (a `Redis`, or a `Cluster`). The source `duplicate()`s two connections of its own and closes only those. */
  readonly redis: Redis | Cluster
  /** Stream to read. */
  readonly stream: string
  /** Consumer group; created (with the stream) when missing. */
  readonly group: string
  /** This process's consumer name. Keep it stable across restarts so the consumer resumes its own pending entries. */
  readonly consumer: string
  /** XREADGROUP COUNT: most entries one read asks for. @defaultValue 100 */
  readonly batchSize?: number
  /** XREADGROUP BLOCK in ms. @defaultValue 5000 */
  readonly blockMs?: number
  /** Most messages handed out and not yet settled. @defaultValue batchSize */
  readonly maxInFlight?: number
  /** Entries pending longer than this (ms) in a dead consumer are claimed (XAUTOCLAIM). @defaultValue 60000 */
  readonly claimIdleMs?: number
  /** Where a newly created group starts reading. @defaultValue "0" (everything already in the stream) */
  readonly startId?: string
  /**
   * After the source stops, how long (ms) it waits for its last read (a graceful stop hands out what that read
   * brings) and for in-flight messages to settle and be acked. @defaultValue 10000
   */
  readonly drainTimeoutMs?: number
  /** Most ids in one XACK. @defaultValue 1000 */
  readonly ackBatchSize?: number
  /**
   * At a steady rate, the least time (ms) between the starts of two reads of new entries, so each read brings
   * what arrived meanwhile as one batch instead of a few entries: fewer reads, INSERTs and acks per event for at
   * most this much more latency. A first entry after a quiet spell is read at once (its read started long ago),
   * and a backlog is read without waiting. 0 reads again as soon as there is room. @defaultValue 0
   */
  readonly readLingerMs?: number
  /**
   * Aborting stops reading: a blocked XREADGROUP is ended at once (`CLIENT UNBLOCK`), what it returns is handed out,
   * then the observable completes; in-flight messages still settle and get acked. So nothing read is left pending
   * unstarted, unless that last read does not return within `drainTimeoutMs` (then its connection is cut).
   */
  readonly signal?: AbortSignal
  /** Called with errors the source recovers from (connection lost, NOGROUP), e.g. to log them. */
  readonly onError?: (err: Error) => void
  /**
   * Called once on subscribe with a function that returns how many messages are handed out and not yet settled,
   * e.g. `(read) => metrics.trackInFlight(read)` for the `webhook_in_flight` gauge (read at scrape time, no per-message cost).
   */
  readonly exposeInFlight?: (read: () => number) => void
  /** Called once after the source closed its connections: whether every handed-out message was settled and acked. */
  readonly onClosed?: (result: { readonly drained: boolean; readonly unsettled: number }) => void
}

const positiveInt = positiveInteger.bind(undefined, 'fromRedisStream')

function isCluster(redis: Redis | Cluster): redis is Cluster {
  return (redis as Cluster).isCluster === true
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())

// behind a backlog, how long (ms) the reader waits for the room to reach a quarter of the read size
const REFILL_WAIT_MS = 25

/**
 * Reads a Redis stream through a consumer group and hands out each entry as a `StreamMessage` with its ack
 * handle. Backpressure follows the batch size: at most `maxInFlight` messages are unsettled at any time, and the
 * next XREADGROUP asks for exactly the room that settling freed; while the stream has a backlog (the last read
 * got all it asked for), it waits up to 25 ms for a quarter of the read size to be free, so messages settled one
 * by one (forwards finishing) still share reads and batches. Settled ids are acked in batches (one XACK for many).
 * On start the consumer first re-reads its own pending entries (id `0`), then new ones (`>`);
 * entries idle longer than `claimIdleMs` in any consumer are claimed (XAUTOCLAIM), while this consumer keeps
 * the claim of its own slow in-flight messages fresh so nobody else takes them. Entries handed out before (its
 * own pending ones, claimed ones, released ones) go out one at a time, each once nothing else is in flight and
 * the one before was acked, and new entries wait meanwhile: one that crashes the process raises only its own
 * delivery count, so the entries that were read with it never reach `maxDeliveries`. Connection loss and a lost
 * group (`NOGROUP`) are recovered from; the observable ends only when unsubscribed or when `signal` aborts.
 * Entries in both forms are read: v2 (header fields beside a raw `payload`, parsed only when a step reads
 * `event.payload`) and the seeds' (one `event` field). An entry that cannot be decoded comes out with
 * `decodeError` set (and a placeholder `event`).
 *
 * @example
 * fromRedisStream({ redis, stream: 'webhook_events', group: 'webhook_workers', consumer: 'worker-a' })
 *   .pipe(mergeMap(async (msg) => { await handle(msg.event); msg.settle() }, 16))
 *   .subscribe()
 */
export function fromRedisStream(options: FromRedisStreamOptions): Observable<StreamMessage> {
  return readGroup(options, false) as Observable<StreamMessage>
}

/**
 * `fromRedisStream` for a batch-native chain: each read of new entries comes out as one batch, the messages in
 * stream order, each with its ack handle; an entry handed out before (re-read from the pending list, or claimed)
 * comes out as a batch of its own. Credit works per message as in `fromRedisStream`: a batch's messages free room
 * as each one is settled. Batches are never empty.
 *
 * @example
 * fromRedisStreamBatches({ redis, stream: 'webhook_events', group: 'webhook_workers', consumer: 'worker-a' })
 *   .pipe(map((msgs) => msgs.map(toEnvelope)), store({ db }), toDLQ({ db, redis }), settle())
 *   .subscribe()
 */
export function fromRedisStreamBatches(options: FromRedisStreamOptions): Observable<readonly StreamMessage[]> {
  return readGroup(options, true) as Observable<readonly StreamMessage[]>
}

// the source itself; `batched` hands out each read as one array, else message by message
function readGroup(options: FromRedisStreamOptions, batched: boolean): Observable<StreamMessage | readonly StreamMessage[]> {
  const { redis, stream, group, consumer } = options
  for (const key of ['stream', 'group', 'consumer'] as const) {
    if (typeof options[key] !== 'string' || options[key] === '') {
      throw new RangeError(`fromRedisStream: "${key}" must be a non-empty string; got ${JSON.stringify(options[key])}`)
    }
  }
  const batchSize = positiveInt('batchSize', options.batchSize ?? 100)
  const maxInFlight = positiveInt('maxInFlight', options.maxInFlight ?? batchSize)
  const blockMs = positiveInt('blockMs', options.blockMs ?? 5000)
  const claimIdleMs = positiveInt('claimIdleMs', options.claimIdleMs ?? 60_000)
  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000
  const ackBatchSize = positiveInt('ackBatchSize', options.ackBatchSize ?? 1000)
  const readLingerMs = options.readLingerMs ?? 0
  // more than a second between reads is a latency no webhook sender expects (WORKER_READ_LINGER has the same bound)
  if (!Number.isFinite(readLingerMs) || readLingerMs < 0 || readLingerMs > 1000) {
    throw new RangeError(`fromRedisStream: "readLingerMs" must be a number of ms from 0 to 1000; got ${readLingerMs}`)
  }
  const startId = options.startId ?? '0'

  return new Observable<StreamMessage | readonly StreamMessage[]>((subscriber) => {
    let stopping = false
    const report = (err: unknown) => options.onError?.(err instanceof Error ? err : new Error(String(err)))
    // one connection blocks in XREADGROUP; the other acks, claims and refreshes so those never wait behind a BLOCK
    const connection = { maxRetriesPerRequest: null, enableOfflineQueue: true, lazyConnect: false }
    const duplicate = (connectionName: string): Redis | Cluster => (isCluster(redis)
      ? redis.duplicate([], { enableOfflineQueue: true, redisOptions: { ...redis.options.redisOptions, ...connection, connectionName } })
      : redis.duplicate({ ...connection, connectionName }))
    const reader = duplicate(`hookstream:${consumer}:read`)
    const commands = duplicate(`hookstream:${consumer}:cmd`)
    // report a lost connection once per outage (ioredis emits an error per reconnect attempt); commands wait meanwhile
    let connectionDown = false
    const onConnectionError = (err: Error) => {
      if (connectionDown || stopping) return
      connectionDown = true
      report(new Error(`connection to Redis lost while reading stream ${stream}; reconnecting: ${err.message}`, { cause: err }))
    }
    reader.on('error', onConnectionError)
    commands.on('error', onConnectionError)
    // after a reconnect, re-read our own pending list: a reply lost with the connection left entries delivered
    // to us that we never saw, and nothing else would hand them out before claimIdleMs
    let readyCount = 0
    reader.on('ready', () => {
      connectionDown = false
      if (++readyCount > 1) pelCursor = '0'
    })
    const client = new StreamClient({ redis: commands, stream })
    const unblocker = readUnblocker({ reader, commands, stream })

    const inFlight = new Map<string, number>() // stream id → when we last (re)claimed it
    options.exposeInFlight?.(() => inFlight.size)
    let ackQueue: string[] = []
    // ids settled here whose XACK is queued or recently done: a pending-list re-read must not hand them out again
    const queuedAcks = new Set<string>()
    const recentlyAcked = new Set<string>()
    const recentLimit = Math.max(10_000, maxInFlight * 10)
    let pelCursor: string | undefined = '0'
    let ackScheduled = false
    let acking: Promise<void> = Promise.resolve()
    let giveUpAt = Infinity // acks still failing after the drain timeout stay pending and are redelivered
    let wakeReader: (() => void) | undefined
    let lastClaimAt = 0
    let claimCursor = '0-0'


    const flushAcks = async (): Promise<void> => {
      ackScheduled = false
      while (ackQueue.length > 0) {
        const ids = ackQueue.slice(0, ackBatchSize)
        try {
          await client.ack(group, ids)
          ackQueue = ackQueue.slice(ids.length)
          for (const id of ids) { queuedAcks.delete(id); recentlyAcked.add(id) }
          for (const id of recentlyAcked) { if (recentlyAcked.size <= recentLimit) break; recentlyAcked.delete(id) }
        } catch (err) {
          // NOGROUP: the group (and its pending list) is gone, so there is nothing left to ack
          if (/NOGROUP/.test((err as Error).message)) {
            ackQueue = ackQueue.slice(ids.length)
            for (const id of ids) queuedAcks.delete(id)
            continue
          }
          report(err)
          if (Date.now() > giveUpAt) return
          await sleep(200)
        }
      }
    }
    const scheduleAck = () => {
      if (ackScheduled) return
      ackScheduled = true
      // one XACK for everything settled in this turn of the event loop
      setImmediate(() => { acking = acking.then(flushAcks) })
    }

    // what a message's settle and nack do, shared by every message of this subscription
    const owner: MessageOwner = {
      settled: (id) => {
        inFlight.delete(id)
        ackQueue.push(id)
        queuedAcks.add(id)
        scheduleAck()
        wakeReader?.()
      },
      released: (id) => {
        inFlight.delete(id)
        // idle as long as claimIdleMs: the next XAUTOCLAIM sweep (started over now) takes it, to hand it out again
        commands.call('XCLAIM', stream, group, consumer, 0, id, 'IDLE', claimIdleMs, 'JUSTID').catch(report)
        claimCursor = '0-0'
        lastClaimAt = 0
        wakeReader?.()
      },
    }
    const makeMessage = (id: string, fields: string[], deliveryCount: number): StreamMessage => {
      inFlight.set(id, Date.now())
      return new SourceMessage(stream, id, toRecord(fields), deliveryCount, owner)
    }

    const emit = (entries: readonly StreamEntry[], counts?: ReadonlyMap<string, number>) => {
      const batch: StreamMessage[] = []
      for (const [id, fields] of entries) {
        // already handed out by this process: in flight, or settled with its XACK queued
        if (inFlight.has(id) || queuedAcks.has(id)) continue
        // settled and acked here: Redis hands it out again only when it lost that XACK (a restart from an older
        // snapshot), or in a pending-list read that crossed it; ack it again, or it stays pending for good
        if (recentlyAcked.has(id)) { recentlyAcked.delete(id); ackQueue.push(id); queuedAcks.add(id); scheduleAck(); continue }
        if (fields === null) { ackQueue.push(id); queuedAcks.add(id); scheduleAck(); continue } // trimmed while pending
        if (subscriber.closed) return
        const message = makeMessage(id, fields, counts?.get(id) ?? 1)
        if (batched) batch.push(message)
        else subscriber.next(message)
      }
      if (batch.length > 0 && !subscriber.closed) subscriber.next(batch)
    }

    const deliveryCounts = async (ids: readonly string[]): Promise<Map<string, number>> => {
      const counts = new Map<string, number>()
      if (ids.length === 0) return counts
      const sorted = [...ids].sort(compareStreamIds)
      const rows = (await commands.call('XPENDING', stream, group, sorted[0] as string,
        sorted[sorted.length - 1] as string, ids.length + inFlight.size, consumer)) as [string, string, number, number][]
      for (const [id, , , count] of rows) counts.set(id, Number(count))
      return counts
    }

    // a read never asks for more than batchSize, nor for more than settling has freed
    const freeRoom = () => Math.min(batchSize, maxInFlight - inFlight.size)
    const refillRoom = Math.ceil(Math.min(batchSize, maxInFlight) / 4)
    let behind = false // the last read got all it asked for: more entries are waiting
    const waitForRoom = async () => {
      while (!stopping && freeRoom() <= 0) {
        await new Promise<void>((resolve) => { wakeReader = resolve })
        wakeReader = undefined
      }
      // with a backlog, reading each settled slot's worth at once costs one read, one dedupe and one INSERT per
      // message or two; an idle stream (caught up) is read at once, so its latency is not affected
      if (behind && !stopping && freeRoom() < refillRoom) {
        let timer: NodeJS.Timeout | undefined
        const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, REFILL_WAIT_MS) })
          .then(() => { timer = undefined })
        while (!stopping && freeRoom() < refillRoom && timer !== undefined) {
          await Promise.race([deadline, new Promise<void>((resolve) => { wakeReader = resolve })])
          wakeReader = undefined
        }
        clearTimeout(timer)
      }
      // let settles of the same turn accumulate, so the next read asks for more than one entry
      await new Promise((resolve) => setImmediate(resolve))
    }

    // Entries of our pending list were handed out before, to a process that may have died of one of them. Each
    // goes out alone, once everything before it settled and its ack reached Redis: one that crashes the process
    // again raises only its own delivery count, and the entries read beside it are not dead-lettered as poison
    // with it. Reading the list also counts the delivery, so nothing in flight may be in it (it would be counted too).
    const waitForRedeliveryTurn = async () => {
      while (!stopping && inFlight.size > 0) {
        await new Promise<void>((resolve) => { wakeReader = resolve })
        wakeReader = undefined
      }
      if (ackQueue.length > 0 && !stopping) await Promise.race([acking = acking.then(flushAcks), stopRequested])
    }

    const readPending = async (cursor: string): Promise<string | undefined> => {
      const entries = entriesOfReadReply(await reader.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1,
        'STREAMS', stream, cursor))
      if (entries.length === 0) return undefined
      emit(entries, await deliveryCounts(entries.map(([id]) => id)))
      return entries[entries.length - 1]?.[0]
    }

    const claimIdle = async () => {
      lastClaimAt = Date.now()
      // JUSTID takes the entries over without counting a delivery: they join our pending list, which hands them
      // out one at a time (and counts each then), as after a restart
      const [next, ids] = (await commands.call('XAUTOCLAIM', stream, group, consumer, claimIdleMs,
        claimCursor, 'COUNT', batchSize, 'JUSTID')) as [string, string[], string[]?]
      claimCursor = next
      if (ids.some((id) => !inFlight.has(id))) pelCursor = '0'
    }

    let lastNewReadAt = 0
    const readNew = async () => {
      // linger: at a steady rate, let what arrives meanwhile make one batch (a backlog is read at once)
      const lingerLeft = behind ? 0 : lastNewReadAt + readLingerMs - Date.now()
      if (lingerLeft > 0) await Promise.race([sleep(lingerLeft), stopRequested])
      await unblocker.prepare()
      if (stopping) return
      const count = freeRoom()
      lastNewReadAt = Date.now()
      const entries = entriesOfReadReply(await reader.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
        'BLOCK', blockMs, 'STREAMS', stream, '>'))
      behind = entries.length >= count
      emit(entries)
    }

    let requestStop = () => {}
    const stopRequested = new Promise<void>((resolve) => { requestStop = resolve })

    const run = async () => {
      let failures = 0
      let groupReady = false
      while (!stopping) {
        try {
          if (!groupReady) {
            await client.ensureGroup(group, startId)
            groupReady = true
          }
          if (pelCursor !== undefined) {
            await waitForRedeliveryTurn()
            if (stopping) break
            pelCursor = await readPending(pelCursor)
          } else {
            await waitForRoom()
            if (stopping) break
            if (Date.now() - lastClaimAt >= Math.min(claimIdleMs / 2, 30_000)) await claimIdle()
            if (pelCursor === undefined && freeRoom() > 0 && !stopping) await readNew()
          }
          failures = 0
        } catch (err) {
          if (stopping) break
          const message = (err as Error).message ?? ''
          if (/NOGROUP/.test(message)) {
            // Redis lost the group (restart without data, or someone deleted it): recreate it, do not loop on the error
            groupReady = false
            report(new Error(`stream ${stream} lost consumer group ${group} (NOGROUP); recreating it`, { cause: err }))
            continue
          }
          failures += 1
          report(err)
          // a stop ends the back-off: there is no read to wait for
          await Promise.race([sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6))), stopRequested])
        }
      }
    }

    // keep the claim of slow but live messages fresh, so another consumer's XAUTOCLAIM does not steal them
    const refreshTimer = setInterval(() => {
      const cutoff = Date.now() - claimIdleMs / 2
      const stale = [...inFlight].filter(([, at]) => at <= cutoff).map(([id]) => id)
      if (stale.length === 0) return
      const now = Date.now()
      for (const id of stale) inFlight.set(id, now)
      commands.call('XCLAIM', stream, group, consumer, 0, ...stale, 'JUSTID').catch(report)
    }, Math.max(50, Math.floor(claimIdleMs / 4)))
    refreshTimer.unref()

    let stopDeadline: number | undefined
    const running = run()
    running.catch((err) => subscriber.error(err))
    let readingDone = false
    void running.then(() => { readingDone = true }, () => { readingDone = true })

    // A graceful stop lets the read in progress return and hands out what it brought, so nothing read is left
    // pending unstarted: CLIENT UNBLOCK ends a blocked read at once. The unblock is repeated while the read has not
    // returned (it may reach Redis after the first one). A read still out at the deadline (a paused server, a lost
    // reply) is cut off, and so is one on a connection that is down, since no reply can come; its entries stay
    // pending for a restart or a claim.
    const finishReading = async (deadline: number) => {
      let unblocking: Promise<unknown> | undefined
      let reported = false
      while (!readingDone && Date.now() < deadline && reader.status === 'ready') {
        unblocking ??= unblocker.unblock().catch((err) => {
          if (!reported) report(new Error(`CLIENT UNBLOCK of the reader of stream ${stream} failed; the stop waits for the read's BLOCK (${blockMs} ms) instead: ${(err as Error).message}`, { cause: err }))
          reported = true
        }).finally(() => { unblocking = undefined })
        await Promise.race([running.catch(() => {}), sleep(Math.min(200, deadline - Date.now()))])
      }
      if (!readingDone) reader.disconnect()
    }
    const onAbort = () => {
      if (stopping) return
      stopping = true
      stopDeadline = Date.now() + drainTimeoutMs
      wakeReader?.()
      requestStop()
      void finishReading(stopDeadline).then(() => subscriber.complete())
    }
    if (options.signal?.aborted) onAbort()
    else options.signal?.addEventListener('abort', onAbort, { once: true })

    return () => {
      stopping = true
      options.signal?.removeEventListener('abort', onAbort)
      wakeReader?.()
      requestStop()
      // unsubscribed without a stop (or the stop is done reading): nothing more can be handed out, so a blocked
      // XREADGROUP is cut off rather than waited for; entries it receives stay pending for us
      reader.disconnect()
      void (async () => {
        const deadline = stopDeadline ?? Date.now() + drainTimeoutMs
        giveUpAt = deadline
        while (inFlight.size > 0 && Date.now() < deadline) await sleep(20)
        clearInterval(refreshTimer)
        // with Redis down an XACK waits for a connection: acks not sent by the deadline stay pending (redelivered)
        await Promise.race([acking = acking.then(flushAcks), sleep(Math.max(1000, deadline - Date.now()))])
        const unsettled = inFlight.size
        const acked = ackQueue.length === 0
        // a QUIT queued behind a command Redis holds (a paused server), or behind a reconnect, must not hold the close
        if (commands.status === 'ready') await Promise.race([commands.quit().catch(() => {}), sleep(Math.max(1000, deadline - Date.now()))])
        commands.disconnect()
        options.onClosed?.({ drained: unsettled === 0 && acked, unsettled })
      })()
    }
  })
}
