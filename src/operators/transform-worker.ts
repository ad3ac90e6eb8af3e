/**
 * The worker-process side of `TransformPool`: it evaluates batches of JSONata jobs and sends their results back
 * over the IPC channel. Before each job it writes a progress record (the job's sequence number and its start in
 * epoch ms, two little-endian float64s) to fd 4; the pool reads them and kills this process when a job overruns
 * its deadline, so nothing here has to interrupt itself.
 *
 * This file runs as a process entry point on its own (Node strips its types in development), so it imports only
 * Node and packages, never project modules, and uses only erasable TypeScript syntax.
 */
import { writeSync } from 'node:fs'
import jsonata from 'jsonata'

/** A tool's rules: `[output field or null for the whole result, JSONata expression]` in order. */
export type TransformRules = readonly (readonly [string | null, string])[]

/**
 * One job of a batch: one event's payload and the index of its tool's rules in the batch's `ruleSets`. The
 * payload comes as the StreamEvent's JSON text when there is one (`eventJson`): copying a string to the worker
 * costs far less than cloning the parsed object.
 */
export interface TransformWorkerJob {
  readonly seq: number
  readonly rules: number
  readonly eventJson?: string
  /** The payload's own JSON text (a v2 stream entry's `payload` field), parsed here rather than on the main thread. */
  readonly payloadJson?: string
  readonly payload?: unknown
}

/** One message to the worker: the jobs, and each distinct rule set once. */
export interface TransformWorkerBatch {
  readonly ruleSets: readonly TransformRules[]
  readonly jobs: readonly TransformWorkerJob[]
}

/**
 * The result of one job: `value`, or `code` and `message` saying why there is none. The worker answers a batch
 * with one JSON text of an array of these (one string crosses the thread boundary faster than many objects).
 */
export interface TransformWorkerResult {
  readonly seq: number
  readonly value?: unknown
  readonly code?: 'TRANSFORM_INVALID' | 'TRANSFORM_FAILED' | 'TRANSFORM_LIMIT'
  readonly rule?: string | null
  readonly message?: string
}

/** What the pool hands the worker at start, as JSON in its first argument. */
export interface TransformWorkerData {
  /** A result longer than this (JSON characters) fails with TRANSFORM_LIMIT. */
  readonly maxResultChars: number
}

const data = JSON.parse(process.argv[2] ?? '{}') as TransformWorkerData
const PROGRESS_FD = 4
const progress = Buffer.alloc(16)

// a full pipe (the pool is busy) drops the record: the pool then judges the job by the one before it
function report(seq: number, startedAt: number): void {
  progress.writeDoubleLE(seq, 0)
  progress.writeDoubleLE(startedAt, 8)
  try {
    writeSync(PROGRESS_FD, progress)
  } catch {
    // EAGAIN on a full pipe; the next record says where the worker is
  }
}
// expressions are compiled once per worker; the bound keeps a tool that rewrites its rules from growing it forever
const compiled = new Map<string, jsonata.Expression | Error>()
const MAX_COMPILED = 1000
/**
 * Deepest nesting of evaluation steps one job may reach. A non-tail recursion grows the heap with every level
 * faster than the time budget stops it; this stops it early as TRANSFORM_LIMIT with a message that names the
 * cause, before the worker process runs out of heap. Ordinary expressions nest a few dozen steps deep.
 */
const MAX_DEPTH = 2000
// jobs run one at a time in a worker, so one counter serves every expression
let depth = 0

function expressionFor(text: string): jsonata.Expression | Error {
  let expression = compiled.get(text)
  if (expression === undefined) {
    if (compiled.size >= MAX_COMPILED) compiled.clear()
    try {
      expression = jsonata(text)
      // the hooks JSONata calls around every evaluation step (steps of a parallel call share their caller's level)
      expression.assign(Symbol.for('jsonata.__evaluate_entry') as unknown as string, (_expr: unknown, _input: unknown, env: { isParallelCall?: boolean }) => {
        if (env.isParallelCall) return
        depth += 1
        if (depth > MAX_DEPTH) {
          throw new RangeError(`the expression nests deeper than ${MAX_DEPTH} evaluation steps (a recursion that does not end?); rewrite it tail-recursively or bound it`)
        }
      })
      expression.assign(Symbol.for('jsonata.__evaluate_exit') as unknown as string, (_expr: unknown, _input: unknown, env: { isParallelCall?: boolean }) => {
        if (!env.isParallelCall) depth -= 1
      })
    } catch (err) {
      expression = err instanceof Error ? err : new Error(String(err))
    }
    compiled.set(text, expression)
  }
  return expression
}

// answers with the result's JSON text, already in its place in the batch's answer
async function run(job: TransformWorkerJob, rules: TransformRules): Promise<string> {
  const failed = (result: TransformWorkerResult) => JSON.stringify(result)
  let payload: unknown = job.payload
  try {
    if (job.payloadJson !== undefined) payload = JSON.parse(job.payloadJson)
    else if (job.eventJson !== undefined) payload = (JSON.parse(job.eventJson) as { payload?: unknown }).payload
  } catch (err) {
    return failed({ seq: job.seq, code: 'TRANSFORM_FAILED', rule: null, message: `the payload is not valid JSON (${(err as Error).message.slice(0, 120)})` })
  }
  const out: Record<string, unknown> = {}
  let whole: unknown = out
  for (const [field, text] of rules) {
    const expression = expressionFor(text)
    if (expression instanceof Error) return failed({ seq: job.seq, code: 'TRANSFORM_INVALID', rule: field, message: expression.message })
    try {
      depth = 0
      const value: unknown = await expression.evaluate(payload)
      if (field === null) whole = value ?? null
      else if (value !== undefined) out[field] = value
    } catch (err) {
      const limit = err instanceof RangeError
      return failed({ seq: job.seq, code: limit ? 'TRANSFORM_LIMIT' : 'TRANSFORM_FAILED', rule: field, message: (err as Error).message })
    }
    if (field === null) break
  }
  // JSON keeps only the data: JSONata marks its arrays with sequence flags
  const json = JSON.stringify(whole) ?? 'null'
  if (json.length > data.maxResultChars) {
    return failed({ seq: job.seq, code: 'TRANSFORM_LIMIT', rule: null,
      message: `the result has ${json.length} characters of JSON, more than the limit of ${data.maxResultChars}` })
  }
  return `{"seq":${job.seq},"value":${json}}`
}

process.on('message', async (batch: TransformWorkerBatch) => {
  const results: string[] = []
  for (const job of batch.jobs) {
    report(job.seq, Date.now())
    results.push(await run(job, batch.ruleSets[job.rules] ?? []))
  }
  report(-1, Date.now())
  process.send?.(`[${results.join(',')}]`)
})
// the pool going away (its process ended) ends this one too
process.on('disconnect', () => process.exit(0))
process.send?.('ready')
