import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { from, lastValueFrom, of, toArray } from 'rxjs'
import { backoffDelayMs, mayRetry } from '../../src/core/backoff.js'
import type { Envelope } from '../../src/core/envelope.js'
import { PipelineError } from '../../src/core/errors.js'
import { parseTool, DEFAULT_RETRY_POLICY } from '../../src/core/tool.js'
import { retryBackoff } from '../../src/operators/retry-backoff.js'
import { envelope, asOneBatch } from './helpers.js'

const Retry = suite('retryBackoff')
const policy = { maxRetries: 3, initialIntervalMs: 10, maxIntervalMs: 40, multiplier: 2, maxElapsedMs: 60_000 }
const transient = new PipelineError('transient', 'DESTINATION_5XX', 'x')

Retry('the backoff schedule doubles from the initial interval, capped, with jitter in [50%, 100%]', () => {
  assert.equal([1, 2, 3, 4, 5].map((n) => backoffDelayMs(DEFAULT_RETRY_POLICY, n, () => 1)), [1000, 2000, 4000, 8000, 16000])
  assert.equal([1, 2, 3].map((n) => backoffDelayMs(DEFAULT_RETRY_POLICY, n, () => 0)), [500, 1000, 2000])
  assert.is(backoffDelayMs(DEFAULT_RETRY_POLICY, 30, () => 1), 300_000)
  assert.is(mayRetry(DEFAULT_RETRY_POLICY, 5, 0), false)
  assert.is(mayRetry(DEFAULT_RETRY_POLICY, 4, 1_800_001), false)
  assert.is(mayRetry(DEFAULT_RETRY_POLICY, 4, 1000), true)
})

Retry('a step failing twice then succeeding runs three times with 2 retries reported', async () => {
  let calls = 0
  const retries: number[] = []
  const step = async (env: Envelope): Promise<Envelope> => (++calls <= 2 ? { ...env, failure: transient } : { ...env, outcome: 'forwarded' as const })
  const [out] = await lastValueFrom(from([envelope()]).pipe(asOneBatch(retryBackoff({ step, policy: () => policy, onRetry: (_e, n) => retries.push(n) })), toArray()))
  assert.is(out!.outcome, 'forwarded')
  assert.is(calls, 3)
  assert.equal(retries, [1, 2])
})

Retry('after max_retries the transient failure stays on the envelope; permanent ones are not retried', async () => {
  let calls = 0
  const step = async (env: Envelope): Promise<Envelope> => { calls += 1; return { ...env, failure: env.message.event.tool_id === 'p' ? new PipelineError('permanent', 'DESTINATION_4XX', 'x') : transient } }
  const out = await lastValueFrom(from([envelope({ tool_id: 't' }), envelope({ tool_id: 'p' })]).pipe(asOneBatch(retryBackoff({ step, policy: () => policy })), toArray()))
  const byTool = new Map(out.map((e) => [e.message.event.tool_id, e]))
  assert.is(byTool.get('t')!.failure?.code, 'DESTINATION_5XX')
  assert.is(byTool.get('t')!.attempts, 3)
  assert.is(byTool.get('p')!.failure?.code, 'DESTINATION_4XX')
  assert.is(calls, 5)
})

Retry('a step that throws is a transient failure, retried like one', async () => {
  let calls = 0
  const step = async (env: Envelope): Promise<Envelope> => { if (++calls === 1) throw new Error('socket hang up'); return { ...env, outcome: 'forwarded' as const } }
  const [out] = await lastValueFrom(from([envelope()]).pipe(asOneBatch(retryBackoff({ step, policy: () => policy })), toArray()))
  assert.is(out!.outcome, 'forwarded')
  assert.is(calls, 2)
})

Retry('a retry due later than maxInlineDelayMs is parked with its attempt count and leaves as parked', async () => {
  const parked: { attempts: number; dueIn: number }[] = []
  const step = async (env: Envelope): Promise<Envelope> => ({ ...env, failure: new PipelineError('transient', 'DESTINATION_429', 'x', { retryAfterMs: 60_000 }) })
  const [out] = await lastValueFrom(from([envelope()]).pipe(asOneBatch(retryBackoff({
    step, policy: () => policy, maxInlineDelayMs: 1000,
    park: async (env, due) => { parked.push({ attempts: env.attempts, dueIn: due - Date.now() }) },
  })), toArray()))
  assert.is(out!.outcome, 'parked')
  assert.is(parked.length, 1)
  assert.is(parked[0]!.attempts, 1)
  assert.ok(parked[0]!.dueIn > 55_000, 'Retry-After is honoured')
})

Retry('a Retry-After of ten years is cut to maxRetryAfterMs (1 h by default) and counted; a shorter one is kept', async () => {
  const tenYearsMs = 10 * 365 * 86_400_000
  const asked = new Map([['far', tenYearsMs], ['near', 120_000]])
  const step = async (env: Envelope): Promise<Envelope> => ({ ...env,
    failure: new PipelineError('transient', 'DESTINATION_429', 'x', { retryAfterMs: asked.get(env.message.event.tool_id) }) })
  for (const [maxRetryAfterMs, cap] of [[undefined, 3_600_000], [60_000, 60_000]] as const) {
    const parked = new Map<string, number>()
    const capped: number[] = []
    await lastValueFrom(from([envelope({ tool_id: 'far' }), envelope({ tool_id: 'near' })]).pipe(asOneBatch(retryBackoff({
      step, policy: () => policy, maxInlineDelayMs: 1000, maxRetryAfterMs, onRetryAfterCapped: (_e, ms) => capped.push(ms),
      park: async (env, due) => { parked.set(env.message.event.tool_id, due - Date.now()) },
    })), toArray()))
    const far = parked.get('far')!
    assert.ok(far > cap - 5000 && far <= cap, `parked for ${far} ms with cap ${cap}`)
    const near = parked.get('near')!
    assert.ok(near > Math.min(cap, 120_000) - 5000 && near <= Math.min(cap, 120_000), `parked for ${near} ms`)
    assert.equal(capped, cap < 120_000 ? [tenYearsMs, 120_000] : [tenYearsMs])
  }
})

Retry('deferred failures (open breaker, rate limit) wait their Retry-After without spending retries or elapsed time', async () => {
  let calls = 0
  const results: [string | undefined, boolean][] = []
  // ten deferrals, then two real failures, then success: more deferrals than max_retries (3), yet it goes through
  const step = async (env: Envelope): Promise<Envelope> => {
    calls += 1
    if (calls <= 10) return { ...env, failure: new PipelineError('transient', 'DESTINATION_CIRCUIT_OPEN', 'x', { retryAfterMs: 5, deferred: true }) }
    if (calls <= 12) return { ...env, failure: transient }
    return { ...env, outcome: 'forwarded' as const }
  }
  const [out] = await lastValueFrom(from([envelope()]).pipe(asOneBatch(retryBackoff({
    step, policy: () => ({ ...policy, maxElapsedMs: 40 }),
    onStepResult: (r, next) => results.push([r.failure?.code, next !== undefined]),
  })), toArray()))
  assert.is(out!.outcome, 'forwarded')
  assert.is(out!.failure, undefined)
  assert.is(calls, 13)
  assert.is(out!.attempts, 2, 'only the two real failures count')
  assert.is(results.length, 13)
  assert.equal(results.at(-1), [undefined, false], 'the success has no next attempt')
  assert.ok(results.slice(0, 12).every(([, next]) => next), 'every failure told when the next attempt is due')
})

Retry('a long deferral is parked without a first-attempt time when nothing was tried yet', async () => {
  const parked: Envelope[] = []
  const step = async (env: Envelope): Promise<Envelope> => ({ ...env, failure: new PipelineError('transient', 'DESTINATION_RATE_LIMITED', 'x', { retryAfterMs: 10_000, deferred: true }) })
  const [out] = await lastValueFrom(from([envelope()]).pipe(asOneBatch(retryBackoff({
    step, policy: () => policy, maxInlineDelayMs: 1000, park: async (env) => { parked.push(env) },
  })), toArray()))
  assert.is(out!.outcome, 'parked')
  assert.equal(parked.map((e) => [e.attempts, e.firstAttemptAt]), [[0, undefined]])
})

Retry('retries of one event do not stall the others of its batch: those go on as a batch of their own, the slow one later', async () => {
  const tool = parseTool({ id: 'slow', provider: 'github', secret: 'x', retry_policy: { initial_interval: '300ms', max_interval: '300ms', max_retries: 1 } })
  const done: string[] = []
  const step = async (env: Envelope & { tool?: typeof tool }): Promise<Envelope & { tool?: typeof tool }> => {
    if (env.tool && env.attempts === 0) return { ...env, failure: transient }
    done.push(env.message.event.tool_id)
    return { ...env, outcome: 'stored' as const }
  }
  const envs = [{ ...envelope({ tool_id: 'slow' }), tool }, envelope({ tool_id: 'a' }), envelope({ tool_id: 'b' })]
  const parts = await lastValueFrom(of(envs).pipe(retryBackoff({ step }), toArray()))
  assert.equal(done, ['a', 'b', 'slow'])
  assert.equal(parts.map((part) => part.map((e) => [e.message.event.tool_id, e.outcome])), [[['a', 'stored'], ['b', 'stored']], [['slow', 'stored']]])
  // negative control: a split time longer than the retry keeps the batch whole, in its order
  done.length = 0
  const whole = await lastValueFrom(of(envs).pipe(retryBackoff({ step, splitAfterMs: 2000 }), toArray()))
  assert.equal(whole.map((part) => part.map((e) => e.message.event.tool_id)), [['slow', 'a', 'b']])
})

Retry('with orderBy, envelopes of one key run one after the other in batch order, other keys in parallel', async () => {
  const started: string[] = []
  const step = async (env: Envelope): Promise<Envelope> => {
    started.push(env.message.event.id)
    await new Promise((r) => setTimeout(r, env.message.event.id === 'k1-a' ? 60 : 5))
    return { ...env, outcome: 'forwarded' as const }
  }
  const envs = [envelope({ id: 'k1-a', repository: 'k1' }), envelope({ id: 'k1-b', repository: 'k1' }), envelope({ id: 'k2-a', repository: 'k2' })]
  const parts = await lastValueFrom(of(envs).pipe(retryBackoff({ step, orderBy: (env) => env.message.event.repository }), toArray()))
  assert.equal(started, ['k1-a', 'k2-a', 'k1-b'], 'k1-b waits for k1-a; k2-a does not')
  assert.equal(parts.flat().map((e) => [e.message.event.id, e.outcome]), [['k2-a', 'forwarded'], ['k1-a', 'forwarded'], ['k1-b', 'forwarded']])
  started.length = 0
  await lastValueFrom(of(envs).pipe(retryBackoff({ step }), toArray()))
  assert.equal(started, ['k1-a', 'k1-b', 'k2-a'], 'negative control: without orderBy all start at once')
})

Retry('unsubscribing during a backoff wait cancels the pending retry', async () => {
  let calls = 0
  const step = async (env: Envelope): Promise<Envelope> => { calls += 1; return { ...env, failure: transient } }
  const sub = from([envelope()]).pipe(asOneBatch(retryBackoff({ step, policy: () => ({ ...policy, initialIntervalMs: 200, maxIntervalMs: 200 }) }))).subscribe()
  await new Promise((r) => setTimeout(r, 50))
  sub.unsubscribe()
  await new Promise((r) => setTimeout(r, 400))
  assert.is(calls, 1)
})

Retry.run()
