import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { lastValueFrom, of, type Subscription } from 'rxjs'
import { parseTool } from '../../src/core/tool.js'
import { transform } from '../../src/operators/transform.js'
import { TransformPool } from '../../src/operators/transform-pool.js'
import { eventually } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { envelope } from './helpers.js'

const Pool = suite('transform pool: tools share it fairly')
const withTool = (tool: ReturnType<typeof parseTool>, payload: unknown) => ({ ...envelope({ tool_id: tool.id, payload }), tool })

// legal JSONata whose regular expression backtracks exponentially on this payload: every event runs out of its time
const BACKTRACKING = '$contains(s, /^(a+)+$/)'
const SLOW_PAYLOAD = { s: `${'a'.repeat(34)}!` }

Pool('jobs of a key whose every job runs out of its time do not hold up another key\'s on a warm pool', withTimeLimit(120_000, async () => {
  const TIMEOUT_MS = 400
  const pool = new TransformPool({ workers: 2 })
  try {
    // both workers started (a key each), so what follows measures the queueing, not the start of a process
    await Promise.all(['warm-1', 'warm-2'].map((key) => pool.run({ rules: [['n', 'n']], payload: { n: 0 }, timeoutMs: 5000, key })))
    const started = Date.now()
    const slow = Array.from({ length: 6 }, () => pool.run({ rules: [['hit', BACKTRACKING]], payload: SLOW_PAYLOAD, timeoutMs: TIMEOUT_MS, key: 'slow' }))
    const fast = Array.from({ length: 10 }, (_, n) => pool.run({ rules: [['n', 'n']], payload: { n }, timeoutMs: TIMEOUT_MS, key: 'fast' }))
    let slowEnded = 0
    for (const outcome of slow) void outcome.then(() => { slowEnded++ })
    const fastOutcomes = await Promise.all(fast)
    const fastMs = Date.now() - started
    assert.equal(fastOutcomes, Array.from({ length: 10 }, (_, n) => ({ ok: true, value: { n } })))
    // one slow job's budget is the most the fast key may wait for a worker; before, it waited behind all 6 (≥ 6 × 400 ms and a worker's restart each)
    assert.ok(fastMs < 2 * TIMEOUT_MS, `the fast key's 10 jobs took ${fastMs} ms, ${slowEnded} of the slow key's 6 had ended`)
    assert.equal((await Promise.all(slow)).map((o) => (o.ok ? 'ok' : o.code)), Array(6).fill('TRANSFORM_TIMEOUT'))
  } finally {
    await pool.close()
  }
}))

Pool('while one tool\'s every event runs out of its transform_timeout, another tool\'s events are transformed at once', withTimeLimit(180_000, async () => {
  const TIMEOUT_MS = 400
  const slowTool = parseTool({ id: 'slow', provider: 'github', secret: 'x', processing_mode: 'transform_and_store',
    transform: { hit: BACKTRACKING }, transform_timeout: `${TIMEOUT_MS}ms` })
  const fastTool = parseTool({ id: 'fast', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { n: 'n' } })
  // the slow tool's batch is read first: its 6 events reach the pool before the fast tool's 10
  const SLOW_EVENTS = 6
  const slow = Array.from({ length: SLOW_EVENTS }, () => withTool(slowTool, SLOW_PAYLOAD))
  const fast = Array.from({ length: 10 }, (_, n) => withTool(fastTool, { n }))
  // how long a fresh pool takes to start a worker process and answer, on this box now
  const warmStarted = Date.now()
  await lastValueFrom(of([withTool(fastTool, { n: -1 })]).pipe(transform({ pool: { workers: 2 } })))
  const startMs = Date.now() - warmStarted
  const doneAt = new Map<string, number>()
  const started = Date.now()
  const out: { id: string; code?: string; transformed?: unknown }[] = []
  const fastDone = () => fast.every((e) => doneAt.has(e.message.event.id))
  let sub: Subscription | undefined
  const finished = new Promise<void>((resolve, reject) => {
    sub = of(slow, fast).pipe(transform({ pool: { workers: 2 } })).subscribe({
      next: (part) => {
        for (const e of part) {
          doneAt.set(e.message.event.id, Date.now() - started)
          out.push({ id: e.message.event.id, code: e.failure?.code, transformed: e.transformed })
        }
      },
      error: reject, complete: resolve,
    })
  })
  // the fast tool waits for its worker process to start (seconds on a loaded box) and at most one slow event's
  // budget, not for the slow tool's backlog, whose first tries take 6 × 400 ms and a worker's restart each
  const boundMs = 2 * startMs + 2 * TIMEOUT_MS
  try {
    await eventually('the fast tool\'s events transformed', fastDone, boundMs).catch(() => {})
    const slowEnded = slow.filter((e) => doneAt.has(e.message.event.id)).length
    assert.ok(fastDone(), `the fast tool got ${fast.filter((e) => doneAt.has(e.message.event.id)).length} of 10 events transformed within ${boundMs} ms ` +
      `(a worker starts in ${startMs} ms; the slow tool's transform_timeout is ${TIMEOUT_MS} ms; ${slowEnded} of its ${SLOW_EVENTS} events had ended)`)
    await finished
  } finally {
    // the pool's workers end with the stream
    sub?.unsubscribe()
  }
  const fastMs = Math.max(...fast.map((e) => doneAt.get(e.message.event.id) ?? Infinity))
  const byId = new Map(out.map((o) => [o.id, o]))
  assert.equal(fast.map((e) => byId.get(e.message.event.id)?.transformed), Array.from({ length: 10 }, (_, n) => ({ n })))
  assert.equal(slow.map((e) => byId.get(e.message.event.id)?.code), Array(SLOW_EVENTS).fill('TRANSFORM_TIMEOUT'), 'every slow event still fails on its own budget')
  console.log(`  fast tool done after ${fastMs} ms (a worker starts in ${startMs} ms); slow tool's last event after ${Math.max(...slow.map((e) => doneAt.get(e.message.event.id) ?? 0))} ms`)
}))

Pool('one key alone has its jobs run, in batches, in order', withTimeLimit(60_000, async () => {
  const pool = new TransformPool({ workers: 2, maxBatch: 4 })
  try {
    const rules = [['n', 'n']] as const
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, n) => pool.run({ rules, payload: { n }, timeoutMs: 5000, key: 'only' })))
    assert.equal(outcomes, Array.from({ length: 40 }, (_, n) => ({ ok: true, value: { n } })))
  } finally {
    await pool.close()
  }
}))

Pool.run()
