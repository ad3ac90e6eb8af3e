import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { from, lastValueFrom, map, of, toArray } from 'rxjs'
import { parseTool } from '../../src/core/tool.js'
import { transform } from '../../src/operators/transform.js'
import { TransformPool } from '../../src/operators/transform-pool.js'
import { envelope, asOneBatch } from './helpers.js'

const Transform = suite('transform')
const withTool = (tool: ReturnType<typeof parseTool>, payload: unknown) => ({ ...envelope({ tool_id: tool.id, payload }), tool })

Transform('a field mapping keeps the payload and adds the result', async () => {
  const tool = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store',
    transform: { branch: "$substringAfter(ref, 'refs/heads/')", n: '$count(commits)' } })
  const [out] = await lastValueFrom(from([withTool(tool, { ref: 'refs/heads/dev', commits: [1, 2, 3] })]).pipe(asOneBatch(transform()), toArray()))
  assert.equal(out!.transformed, { branch: 'dev', n: 3 })
  assert.equal(out!.message.event.payload, { ref: 'refs/heads/dev', commits: [1, 2, 3] })
})

Transform('one whole-result expression replaces the result', async () => {
  const tool = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: '{ "who": sender.login }' })
  const [out] = await lastValueFrom(from([withTool(tool, { sender: { login: 'ada' } })]).pipe(asOneBatch(transform()), toArray()))
  assert.equal(out!.transformed, { who: 'ada' })
})

Transform('a rule that does not compile fails permanently naming the rule', async () => {
  // parseTool refuses such a rule, so build the tool around it (a tool from a library user's own code)
  const tool = { ...parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { bad: 'a' } }),
    transform: { bad: '$count(' } }
  const [out] = await lastValueFrom(from([withTool(tool, {})]).pipe(asOneBatch(transform()), toArray()))
  assert.is(out!.failure?.code, 'TRANSFORM_INVALID')
  assert.match(out!.failure!.message, /tool "t" transform rule "bad" does not compile/)
})

Transform('a changed rule set is compiled again; other modes pass through untouched', async () => {
  const a = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { v: 'a' } })
  const b = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { v: 'b' } })
  const plain = parseTool({ id: 'p', provider: 'github', secret: 'x' })
  const envs = [withTool(a, { a: 1, b: 2 }), withTool(b, { a: 1, b: 2 }), withTool(plain, { a: 1 })]
  const out = await lastValueFrom(from(envs).pipe(asOneBatch(transform()), map((e) => e.transformed), toArray()))
  assert.equal(out, [{ v: 1 }, { v: 2 }, undefined])
})

const looping = '($f := function($n){ $f($n) }; $f(1))'

// counts event-loop turns while `work` runs: a transform on the main thread leaves none
async function loopTurnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turns: number; ms: number }> {
  let turns = 0
  const timer = setInterval(() => { turns += 1 }, 10)
  const started = Date.now()
  try {
    return { result: await work(), turns, ms: Date.now() - started }
  } finally {
    clearInterval(timer)
  }
}

const stopped = async (rule: string, payload: unknown, transformTimeout = '100ms') => {
  const tool = parseTool({ id: 'runaway', provider: 'github', secret: 'x', processing_mode: 'transform_and_store',
    transform: { out: rule }, transform_timeout: transformTimeout })
  return loopTurnsDuring(async () => (await lastValueFrom(from([withTool(tool, payload)]).pipe(asOneBatch(transform()), toArray())))[0]!)
}

Transform('a tail recursion is stopped at the tool\'s budget with TRANSFORM_TIMEOUT while the event loop keeps turning', async () => {
  const { result, turns, ms } = await stopped(looping, {}, '200ms')
  assert.is(result.failure?.code, 'TRANSFORM_TIMEOUT')
  assert.is(result.failure?.kind, 'permanent')
  assert.match(result.failure!.message, /tool "runaway" transform .*200 ms/)
  assert.ok(ms >= 200 && ms < 5000, `stopped after ${ms} ms`)
  assert.ok(turns >= 10, `event loop turned ${turns} times in ${ms} ms`)
})

Transform('a backtracking regular expression on payload data is stopped with TRANSFORM_TIMEOUT', async () => {
  const { result, turns, ms } = await stopped('$contains(s, /^(a+)+$/)', { s: `${'a'.repeat(34)}!` })
  assert.is(result.failure?.code, 'TRANSFORM_TIMEOUT')
  assert.ok(ms < 5000, `stopped after ${ms} ms`)
  assert.ok(turns >= 5, `event loop turned ${turns} times in ${ms} ms`)
})

Transform('a $map over ten million numbers is stopped, by time or by the worker heap', async () => {
  const { result, ms } = await stopped('$map([1..10000000], function($v){ $v * 2 })', {})
  assert.ok(['TRANSFORM_TIMEOUT', 'TRANSFORM_LIMIT'].includes(result.failure?.code ?? ''), `code ${result.failure?.code}`)
  assert.ok(ms < 5000, `stopped after ${ms} ms`)
})

Transform('a transform that outgrows the evaluator\'s heap within its time fails with TRANSFORM_LIMIT and takes no process down', async () => {
  // in its own process: before the fix, V8's out-of-memory in a worker thread aborted the whole process
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/operators/transform-heap-child.ts'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
  assert.is(code, 0, `the test process ended with ${code ?? signal}: ${stderr.slice(-400)}`)
  const [hungry, fine] = JSON.parse(stdout) as { code: string | null; message: string | null; transformed: unknown }[]
  assert.is(hungry?.code, 'TRANSFORM_LIMIT', `hungry: ${hungry?.code} ${hungry?.message}`)
  assert.match(hungry?.message ?? '', /heap of 128 MiB/)
  assert.is(fine?.code, null)
  assert.equal(fine?.transformed, { out: 3 })
})

Transform('a batch of large events that together outgrow a worker\'s heap is transformed event by event instead of crashing worker after worker', async () => {
  // 40 events of 1 MB against a 32 MiB heap: each fits, the batch of them does not (before the fix the pool sent the
  // same batch to a fresh worker after each crash, for ever, and every tool's transforms waited behind it)
  const pool = new TransformPool({ workers: 1, maxHeapMb: 32 })
  try {
    const eventJson = JSON.stringify({ payload: { big: 'x'.repeat(1_000_000) } })
    const jobs = Array.from({ length: 40 }, () => pool.run({ rules: [[null, '$length(big)']], eventJson, timeoutMs: 5000 }))
    let timer: NodeJS.Timeout | undefined
    const outcomes = await Promise.race([Promise.all(jobs), new Promise<'stuck'>((resolve) => { timer = setTimeout(() => resolve('stuck'), 30_000) })])
    clearTimeout(timer)
    assert.ok(outcomes !== 'stuck', 'the 40 events had no outcome after 30 s')
    assert.equal(outcomes.map((o) => (o.ok ? o.value : o.code)), Array(40).fill(1_000_000))
  } finally {
    await pool.close()
  }
})

Transform('a non-tail recursion is stopped by the depth budget with TRANSFORM_LIMIT before it outgrows memory', async () => {
  // a 2 s time budget: the depth budget must be what stops it, with a message that says why (the heap would run
  // out first, with a message that does not)
  const { result, ms } = await stopped('($f := function($n){ [$n, $f($n + 1)] }; $f(1))', {}, '2s')
  assert.is(result.failure?.code, 'TRANSFORM_LIMIT', `code ${result.failure?.code}: ${result.failure?.message}`)
  assert.match(result.failure?.message ?? '', /nests deeper than 2000 evaluation steps/)
  assert.ok(ms < 10_000, `stopped after ${ms} ms`)
})

Transform('while one tool loops, 200 events of another tool are transformed; the looping events fail alone', async () => {
  const loop = parseTool({ id: 'loop', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: looping })
  const good = parseTool({ id: 'good', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { n: 'n' } })
  const envs = [withTool(loop, {}), ...Array.from({ length: 200 }, (_, n) => withTool(good, { n })), withTool(loop, {})]
  const out = await lastValueFrom(from(envs).pipe(asOneBatch(transform()), toArray()))
  const failed = out.filter((e) => e.failure)
  assert.equal(failed.map((e) => [e.tool.id, e.failure!.code]), [['loop', 'TRANSFORM_TIMEOUT'], ['loop', 'TRANSFORM_TIMEOUT']])
  const values = out.filter((e) => !e.failure).map((e) => (e.transformed as { n: number }).n).sort((a, b) => a - b)
  assert.equal(values, Array.from({ length: 200 }, (_, n) => n))
})

Transform('a result larger than the limit fails with TRANSFORM_LIMIT', async () => {
  const tool = parseTool({ id: 'big', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: '$pad("", 2000, "x")' })
  const [out] = await lastValueFrom(from([withTool(tool, {})]).pipe(asOneBatch(transform({ pool: { maxResultChars: 1000 } })), toArray()))
  assert.is(out!.failure?.code, 'TRANSFORM_LIMIT')
  assert.match(out!.failure!.message, /more than the limit of 1000/)
})

Transform('a tool whose transform does not compile is refused when it is saved, with the compiler\'s message', () => {
  try {
    parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { bad: '$count(' } })
    assert.unreachable()
  } catch (err) {
    assert.is((err as { code?: string }).code, 'TOOL_INVALID')
    assert.match((err as Error).message, /field "transform.bad" does not compile as JSONata: .+/)
  }
})

Transform('a recursion 100 levels deep is within the depth budget', async () => {
  const { result } = await stopped('($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100))', {}, '2s')
  assert.is(result.failure, undefined, `failed: ${result.failure?.code} ${result.failure?.message}`)
  assert.is((result.transformed as { out?: number } | undefined)?.out, 100)
})

Transform('transform_timeout is a duration between 1ms and 10s and defaults to 100 ms', () => {
  assert.is(parseTool({ id: 't', provider: 'github', secret: 'x' }).transformTimeoutMs, 100)
  assert.is(parseTool({ id: 't', provider: 'github', secret: 'x', transform_timeout: '250ms' }).transformTimeoutMs, 250)
  for (const bad of ['0ms', '1m', 'soon']) {
    try {
      parseTool({ id: 't', provider: 'github', secret: 'x', transform_timeout: bad })
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, /field "transform_timeout"/)
    }
  }
})

Transform('a batch leaves in parts, in its order, as the pool answers, so the store can start on the first events', async () => {
  const tool = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { n: 'n' } })
  const envs = Array.from({ length: 8 }, (_, n) => withTool(tool, { n }))
  // one worker, two jobs per message: the pool answers the batch in four turns, a quarter of it each
  const parts = await lastValueFrom(of(envs).pipe(transform({ pool: { workers: 1, maxBatch: 2 } }), toArray()))
  assert.equal(parts.map((part) => part.length), [2, 2, 2, 2])
  assert.equal(parts.flat().map((env) => env.transformed), envs.map((_, n) => ({ n })))
})

Transform('a slow event holds the events after it in its batch: parts never overtake each other', async () => {
  const tool = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store',
    transform: { slow: '$contains(s, /^(a+)+$/)', n: 'n' }, transform_timeout: '10s' })
  // the first event backtracks for a while on one worker; the other worker is done with the rest long before
  const envs = [withTool(tool, { n: 0, s: `${'a'.repeat(25)}!` }), ...[1, 2, 3].map((n) => withTool(tool, { n, s: 'b' }))]
  const parts = await lastValueFrom(of(envs).pipe(transform({ pool: { workers: 2, maxBatch: 1 } }), toArray()))
  assert.equal(parts.flat().map((env) => env.message), envs.map((env) => env.message))
  assert.equal(parts.flat().map((env) => (env.transformed as { n: number }).n), [0, 1, 2, 3])
})

Transform('a batch with nothing to transform passes on whole', async () => {
  const plain = parseTool({ id: 'p', provider: 'github', secret: 'x' })
  const envs = Array.from({ length: 8 }, () => withTool(plain, {}))
  const parts = await lastValueFrom(of(envs).pipe(transform({ pool: { workers: 1, maxBatch: 2 } }), toArray()))
  assert.is(parts.length, 1)
  assert.is(parts[0], envs)
})

Transform.run()
