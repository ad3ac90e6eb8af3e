import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EMPTY, lastValueFrom, of, Subject, toArray } from 'rxjs'
import { PipelineError } from '../../src/core/errors.js'
import { batchStep } from '../../src/operators/batch-step.js'

const BatchStep = suite('batchStep')

BatchStep('an empty source completes without calling the step', async () => {
  let calls = 0
  const out = await lastValueFrom(EMPTY.pipe(batchStep((envs: readonly number[]) => { calls += 1; return envs }), toArray()))
  assert.equal(out, [])
  assert.is(calls, 0)
})

BatchStep('each batch goes through the step once and comes out as one batch', async () => {
  const seen: (readonly number[])[] = []
  const out = await lastValueFrom(of([1, 2, 3], [4]).pipe(
    batchStep(async (envs: readonly number[]) => { seen.push(envs); return envs.map((n) => n * 10) }), toArray()))
  assert.equal(out, [[10, 20, 30], [40]])
  assert.is(seen.length, 2)
})

BatchStep('a step with nothing to do passes the same batch on in the same turn', () => {
  const input = [1, 2]
  const out: (readonly number[])[] = []
  const source = new Subject<readonly number[]>()
  source.pipe(batchStep((envs: readonly number[]) => envs)).subscribe((b) => out.push(b))
  source.next(input)
  assert.is(out.length, 1)
  assert.ok(out[0] === input, 'the very same array passes on')
})

BatchStep('an infrastructure failure holds the batch and runs the step again; holds are reported', async () => {
  let calls = 0
  const holds: boolean[] = []
  const out = await lastValueFrom(of([1, 2]).pipe(batchStep(async (envs: readonly number[]) => {
    calls += 1
    if (calls < 3) throw new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE', 'down')
    return envs
  }, { hold: { initialDelayMs: 5, onHold: (held) => holds.push(held) } }), toArray()))
  assert.equal(out, [[1, 2]])
  assert.is(calls, 3)
  assert.equal(holds, [true, false])
})

BatchStep('any other error ends the stream, also one thrown synchronously', async () => {
  for (const fn of [async () => { throw new Error('bug') }, () => { throw new Error('bug') }]) {
    try {
      await lastValueFrom(of([1]).pipe(batchStep(fn as (envs: readonly number[]) => Promise<readonly number[]>)))
      assert.unreachable()
    } catch (err) {
      assert.is((err as Error).message, 'bug')
    }
  }
})

BatchStep('concurrency bounds the batches in the step at once; 1 keeps arrival order', async () => {
  for (const concurrency of [1, 3]) {
    let running = 0
    let most = 0
    const out = await lastValueFrom(of([1], [2], [3], [4], [5]).pipe(batchStep(async (envs: readonly number[]) => {
      running += 1
      most = Math.max(most, running)
      await new Promise((r) => setTimeout(r, 10 * (6 - (envs[0] as number))))
      running -= 1
      return envs
    }, { concurrency }), toArray()))
    assert.is(most, concurrency)
    if (concurrency === 1) assert.equal(out, [[1], [2], [3], [4], [5]])
    else assert.is(out.length, 5)
  }
})

BatchStep('a bad concurrency is refused when the step is built, naming the option', () => {
  try {
    batchStep((envs) => envs, { concurrency: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"concurrency"/)
  }
})

BatchStep.run()
