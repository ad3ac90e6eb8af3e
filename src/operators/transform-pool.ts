import { fork, type ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { TransformRules, TransformWorkerBatch, TransformWorkerData, TransformWorkerJob, TransformWorkerResult } from './transform-worker.js'

/** Options of `TransformPool`. */
export interface TransformPoolOptions {
  /** Worker processes evaluating at once. @defaultValue 2 */
  readonly workers?: number
  /** Heap of each worker process in MiB; a job that needs more fails with TRANSFORM_LIMIT. @defaultValue 128 */
  readonly maxHeapMb?: number
  /** Jobs sent to a worker in one message (the message passing is paid per batch). @defaultValue 64 */
  readonly maxBatch?: number
  /** A result longer than this many characters of JSON fails with TRANSFORM_LIMIT. @defaultValue 1,048,576 */
  readonly maxResultChars?: number
}

/** One event's transform: its tool's rules, its payload and the time it may take. */
export interface TransformJob {
  /**
   * `[output field or null for the whole result, JSONata expression]` in order. Pass the same array for every
   * event of a tool: a batch carries each distinct array once.
   */
  readonly rules: TransformRules
  /** The event as JSON text (the stream entry's `event` field), whose `payload` the rules read; the cheaper way. */
  readonly eventJson?: string
  /** The payload's own JSON text (a v2 stream entry's `payload` field); the worker parses it. */
  readonly payloadJson?: string
  /** The payload itself, when there is neither `eventJson` nor `payloadJson`. */
  readonly payload?: unknown
  /** Wall-clock budget of this job in milliseconds, counted from when a worker starts it. */
  readonly timeoutMs: number
  /**
   * Whose job it is (the tool's id): the pool shares its workers fairly between keys, so one tool whose jobs
   * run out of their time cannot make another's wait behind them. @defaultValue one key for every job
   */
  readonly key?: string
}

/** The outcome of one job: the result, or the code, the rule and the reason it has none. */
export type TransformOutcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly code: 'TRANSFORM_INVALID' | 'TRANSFORM_FAILED' | 'TRANSFORM_LIMIT' | 'TRANSFORM_TIMEOUT';
      readonly rule: string | null; readonly message: string }

interface Pending {
  readonly job: TransformJob
  /** The job's key (`TransformJob.key`, or '' without one). */
  readonly key: string
  readonly seq: number
  readonly resolve: (outcome: TransformOutcome) => void
  /** It overran once already; a second overrun fails it. */
  overran: boolean
  /** Its batch took its worker down: it runs again in a batch of its own, so only a job that does so alone fails. */
  alone: boolean
}

interface Slot {
  readonly worker: ChildProcess
  /** [sequence number of the running job or -1, its start in epoch ms], as the worker last reported them. */
  readonly progress: Float64Array
  batch: Pending[] | undefined
  /** The worker loaded and ran; a worker that fails before that fails its jobs instead of being replaced in a loop. */
  online: boolean
  /** The end of the worker's stderr, where V8 says it ran out of heap. */
  stderrTail: string
}

// in development this module is TypeScript run by tsx and Node strips the worker's types; built, both are .js
const WORKER_PATH = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './transform-worker.ts' : './transform-worker.js', import.meta.url))
const WATCH_INTERVAL_MS = 10
/** How long a key whose job overran its budget gets batches of its own, apart from other keys' jobs. */
const OVERRAN_MEMORY_MS = 60_000
/** One progress record of the worker: two little-endian float64s, the running job's seq and its start (epoch ms). */
const PROGRESS_RECORD_BYTES = 16
/** The worker's stdio: its stderr is read for V8's out-of-memory report, fd 4 carries its progress records. */
const WORKER_STDIO = ['ignore', 'ignore', 'pipe', 'ipc', 'pipe'] as const

/**
 * Evaluates JSONata transforms in a few worker processes, so a runaway expression (an endless recursion, a huge
 * `$map`, a backtracking regular expression on payload data) can neither stall the event loop nor take the
 * process down: V8 aborts a whole process when a heap limit is hit during a large allocation, which a worker
 * thread cannot contain (nodejs/node#47224), so each worker is a process of its own. Each job has a deadline:
 * the pool kills a worker whose running job overruns it, fails that job with `TRANSFORM_TIMEOUT`, starts a
 * fresh worker and runs the rest of the batch again there. A job that runs the worker's heap out fails with
 * `TRANSFORM_LIMIT`. Workers start on the first job; `close()` ends them. Jobs of different keys (tools) are
 * fair to each other: a free worker takes a batch of the key with the fewest workers busy on it (of those, the
 * one served least lately); the last free worker's batch is filled up with other keys' jobs unless one of them
 * overran its budget in the last minute. So while one tool's jobs overrun on one worker, the others' run on the
 * rest. A key alone has every worker, in arrival order.
 *
 * @example
 * const pool = new TransformPool({ workers: 2 })
 * await pool.run({ rules: [['ref', 'ref']], payload: { ref: 'main' }, timeoutMs: 100 }) // { ok: true, value: { ref: 'main' } }
 * await pool.close()
 */
export class TransformPool {
  private readonly slots: Slot[] = []
  // the jobs waiting, one queue per key, the key served least lately first (a key served goes to the end)
  private readonly queues = new Map<string, Pending[]>()
  // until when (ms since epoch) a key counts as one whose jobs overrun, by key
  private readonly overranUntil = new Map<string, number>()
  private readonly workers: number
  private readonly maxHeapMb: number
  private readonly maxBatch: number
  private readonly maxResultChars: number
  private seq = 0
  private watch: NodeJS.Timeout | undefined
  private closed = false
  private dispatchScheduled = false

  constructor(options: TransformPoolOptions = {}) {
    this.workers = options.workers ?? 2
    this.maxHeapMb = options.maxHeapMb ?? 128
    this.maxBatch = options.maxBatch ?? 64
    this.maxResultChars = options.maxResultChars ?? 1_048_576
    for (const [name, value, min] of [['workers', this.workers, 1], ['maxHeapMb', this.maxHeapMb, 16],
      ['maxBatch', this.maxBatch, 1], ['maxResultChars', this.maxResultChars, 1]] as const) {
      if (!Number.isInteger(value) || value < min) {
        throw new RangeError(`TransformPool: "${name}" must be an integer of at least ${min}; got ${value}`)
      }
    }
  }

  /** Runs one job; never rejects: every failure is an outcome. */
  run(job: TransformJob): Promise<TransformOutcome> {
    if (this.closed) {
      return Promise.resolve({ ok: false, code: 'TRANSFORM_FAILED', rule: null, message: 'the transform pool is closed (the pipeline is stopping)' })
    }
    return new Promise((resolve) => {
      this.enqueue([{ job, key: job.key ?? '', seq: ++this.seq, resolve, overran: false, alone: false }], 'back')
      // the events of one read arrive in one turn of the event loop: send them as one batch
      if (!this.dispatchScheduled) {
        this.dispatchScheduled = true
        setImmediate(() => {
          this.dispatchScheduled = false
          this.dispatch()
        })
      }
    })
  }

  /** Terminates the workers; jobs still waiting fail. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.watch)
    const slots = this.slots.splice(0)
    for (const pending of [...this.takeAll(), ...slots.flatMap((s) => s.batch ?? [])]) {
      pending.resolve({ ok: false, code: 'TRANSFORM_FAILED', rule: null, message: 'the transform pool closed before the transform ran' })
    }
    await Promise.all(slots.map((s) => stop(s.worker)))
  }

  // puts jobs at the front of their keys' queues (a batch given back), in their order, or at the back
  private enqueue(pendings: readonly Pending[], where: 'front' | 'back'): void {
    const byKey = new Map<string, Pending[]>()
    for (const pending of pendings) {
      const list = byKey.get(pending.key)
      if (list) list.push(pending)
      else byKey.set(pending.key, [pending])
    }
    for (const [key, list] of byKey) {
      let queue = this.queues.get(key)
      if (!queue) this.queues.set(key, (queue = []))
      if (where === 'front') queue.unshift(...list)
      else queue.push(...list)
    }
  }

  // whether a job of `key` overran its budget lately: its jobs then go to a worker in batches of their own
  private overranLately(key: string): boolean {
    const until = this.overranUntil.get(key)
    if (until !== undefined && until <= Date.now()) this.overranUntil.delete(key)
    return until !== undefined && until > Date.now()
  }

  private takeAll(): Pending[] {
    const all = [...this.queues.values()].flat()
    this.queues.clear()
    return all
  }

  // the queue to serve next: of the keys with jobs waiting, the one with the fewest workers busy on it, and of
  // those the one served least lately; it goes to the end of the order
  private nextQueue(): Pending[] | undefined {
    const busyOn = new Map<string, number>()
    for (const slot of this.slots) {
      const key = slot.batch?.[0]?.key
      if (key !== undefined) busyOn.set(key, (busyOn.get(key) ?? 0) + 1)
    }
    let best: string | undefined
    for (const key of this.queues.keys()) {
      if (best === undefined || (busyOn.get(key) ?? 0) < (busyOn.get(best) ?? 0)) best = key
    }
    if (best === undefined) return undefined
    const queue = this.queues.get(best) as Pending[]
    this.queues.delete(best)
    this.queues.set(best, queue)
    return queue
  }

  private dispatch(): void {
    while (this.queues.size > 0 && !this.closed) {
      let slot = this.slots.find((s) => s.batch === undefined)
      if (!slot && this.slots.length < this.workers) this.slots.push((slot = this.spawn()))
      if (!slot) return
      const queue = this.nextQueue() as Pending[]
      const together = queue[0]?.alone ? 1 : queue.findIndex((p, i) => i >= this.maxBatch || p.alone)
      const batch = queue.splice(0, together < 0 ? this.maxBatch : together)
      const key = batch[0]!.key
      if (queue.length === 0) this.queues.delete(key)
      // on the last worker free, room left goes to the other keys' jobs (one message for many tools' few events),
      // but not to or beside a key whose jobs overran lately: its batch is its own, so it holds up only its own
      const lastFree = this.slots.length >= this.workers && !this.slots.some((s) => s !== slot && s.batch === undefined)
      if (lastFree && !batch[0]!.alone && batch.length < this.maxBatch && !this.overranLately(key)) {
        for (const [other, rest] of this.queues) {
          if (this.overranLately(other)) continue
          while (batch.length < this.maxBatch && rest.length > 0 && !rest[0]!.alone) batch.push(rest.shift()!)
          if (rest.length === 0) this.queues.delete(other)
          if (batch.length >= this.maxBatch) break
        }
      }
      slot.batch = batch
      slot.progress[0] = -1
      const ruleSets = new Map<TransformRules, number>()
      const jobs = batch.map(({ seq, job }): TransformWorkerJob => {
        let rules = ruleSets.get(job.rules)
        if (rules === undefined) ruleSets.set(job.rules, (rules = ruleSets.size))
        if (job.payloadJson !== undefined) return { seq, rules, payloadJson: job.payloadJson }
        return job.eventJson !== undefined ? { seq, rules, eventJson: job.eventJson } : { seq, rules, payload: job.payload }
      })
      const message: TransformWorkerBatch = { ruleSets: [...ruleSets.keys()], jobs }
      busy(slot.worker, true)
      slot.worker.send(message)
    }
    if (!this.watch && this.slots.some((s) => s.batch)) {
      this.watch = setInterval(() => this.checkDeadlines(), WATCH_INTERVAL_MS)
      this.watch.unref()
    }
  }

  private spawn(): Slot {
    const workerData: TransformWorkerData = { maxResultChars: this.maxResultChars }
    const worker = fork(WORKER_PATH, [JSON.stringify(workerData)], {
      execArgv: [`--max-old-space-size=${this.maxHeapMb}`], serialization: 'advanced', stdio: [...WORKER_STDIO],
    })
    const slot: Slot = { worker, progress: Float64Array.of(-1, 0), batch: undefined, online: false, stderrTail: '' }
    const stderr = worker.stdio[2] as Socket
    const progress = worker.stdio[4] as Socket
    stderr.setEncoding('utf8')
    stderr.on('data', (text: string) => { slot.stderrTail = (slot.stderrTail + text).slice(-2048) })
    let partial = Buffer.alloc(0)
    progress.on('data', (chunk: Buffer) => {
      const bytes = partial.length > 0 ? Buffer.concat([partial, chunk]) : chunk
      const whole = bytes.length - (bytes.length % PROGRESS_RECORD_BYTES)
      if (whole >= PROGRESS_RECORD_BYTES) {
        slot.progress[0] = bytes.readDoubleLE(whole - PROGRESS_RECORD_BYTES)
        slot.progress[1] = bytes.readDoubleLE(whole - PROGRESS_RECORD_BYTES + 8)
      }
      partial = Buffer.from(bytes.subarray(whole))
    })
    // an idle worker does not hold the event loop open; one with a batch does (see `busy`)
    busy(worker, false)
    stderr.unref()
    progress.unref()
    worker.on('message', (message: string) => {
      if (message === 'ready') slot.online = true
      else this.finish(slot, JSON.parse(message) as TransformWorkerResult[])
    })
    worker.on('error', (err: Error) => this.replace(slot, 'TRANSFORM_FAILED', `the transform worker failed: ${err.message}`))
    worker.on('exit', (code, signal) => {
      // V8's fatal out-of-memory prints this and aborts the worker process
      const outOfMemory = /heap out of memory|Reached heap limit/.test(slot.stderrTail)
      this.replace(slot, outOfMemory ? 'TRANSFORM_LIMIT' : 'TRANSFORM_FAILED', outOfMemory
        ? `it needed more than the transform heap of ${this.maxHeapMb} MiB`
        : `the transform worker exited (${signal ?? `code ${code}`})`)
    })
    return slot
  }

  private finish(slot: Slot, results: readonly TransformWorkerResult[]): void {
    const batch = slot.batch ?? []
    slot.batch = undefined
    busy(slot.worker, false)
    const bySeq = new Map(results.map((r) => [r.seq, r]))
    for (const pending of batch) {
      const result = bySeq.get(pending.seq)
      if (result !== undefined && 'value' in result) pending.resolve({ ok: true, value: result.value })
      else pending.resolve({ ok: false, code: result?.code ?? 'TRANSFORM_FAILED', rule: result?.rule ?? null, message: result?.message ?? 'no result' })
    }
    this.idle()
    this.dispatch()
  }

  private checkDeadlines(): void {
    const now = Date.now()
    for (const slot of this.slots) {
      const running = slot.batch?.find((p) => p.seq === slot.progress[0])
      if (running && now - (slot.progress[1] ?? now) > running.job.timeoutMs) {
        this.replace(slot, 'TRANSFORM_TIMEOUT', `it ran longer than its budget of ${running.job.timeoutMs} ms, on two tries`)
      }
    }
    this.idle()
  }

  // the job the worker was running fails; the rest of its batch waits at the head of the queue for a fresh worker
  private replace(slot: Slot, code: 'TRANSFORM_TIMEOUT' | 'TRANSFORM_LIMIT' | 'TRANSFORM_FAILED', reason: string): void {
    const index = this.slots.indexOf(slot)
    if (index < 0) return
    this.slots.splice(index, 1)
    slot.worker.removeAllListeners()
    slot.worker.on('error', () => {})
    void stop(slot.worker)
    const batch = slot.batch ?? []
    slot.batch = undefined
    if (!slot.online) {
      for (const pending of [...batch, ...this.takeAll()]) pending.resolve({ ok: false, code, rule: null, message: reason })
      return
    }
    // a job alone was the one running, even when the worker died before it said so
    const running = batch.length === 1 ? batch[0] : batch.find((p) => p.seq === slot.progress[0])
    const rest = batch.filter((p) => p !== running)
    // a worker that died under a batch of several jobs (out of heap with the batch's payloads and results, maybe
    // between two jobs) says nothing of one of them: each runs again alone, so a batch too big for the heap is
    // not sent to worker after worker for ever, and only a job that takes a worker down by itself fails
    if (code !== 'TRANSFORM_TIMEOUT' && batch.length > 1) {
      for (const pending of batch) pending.alone = true
      this.enqueue(batch, 'front')
      this.dispatch()
      return
    }
    if (running && code === 'TRANSFORM_TIMEOUT') this.overranUntil.set(running.key, Date.now() + OVERRAN_MEMORY_MS)
    // a busy machine can pause a process past a short budget: a job that overruns once runs again before it fails
    if (running && code === 'TRANSFORM_TIMEOUT' && !running.overran) {
      running.overran = true
      this.enqueue([running], 'back')
    } else {
      running?.resolve({ ok: false, code, rule: null, message: reason })
    }
    this.enqueue(rest, 'front')
    this.dispatch()
  }

  private idle(): void {
    if (this.watch && !this.slots.some((s) => s.batch)) {
      clearInterval(this.watch)
      this.watch = undefined
    }
  }
}

// a worker with a batch keeps the process alive until it answers, as any pending I/O does; an idle one does not
function busy(worker: ChildProcess, working: boolean): void {
  if (working) {
    worker.ref()
    worker.channel?.ref()
  } else {
    worker.unref()
    worker.channel?.unref()
  }
}

// kills a worker process and waits for it to be gone (at once when it already is)
async function stop(worker: ChildProcess): Promise<void> {
  if (worker.exitCode !== null || worker.signalCode !== null) return
  const gone = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
  worker.kill('SIGKILL')
  await gone
}
