import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { release } from './release.js'

interface Ctx { tracing?: string; w?: string; redis?: string }
const Release = suite('release (teardown of a test context)')

Release('a field its before hook never set is skipped; the others are closed in the order given', async () => {
  const closed: string[] = []
  const ctx: Ctx = { tracing: 't', redis: 'r' } // the hook failed before it built `w`
  await release(ctx, { tracing: (t) => { closed.push(t) }, w: (w) => { closed.push(w) }, redis: (r) => { closed.push(r) } })
  assert.equal(closed, ['t', 'r'])
  assert.equal(ctx, {}, 'closed fields are removed from the context')
})

Release('a closer that throws does not stop the ones after it; its error is thrown at the end', async () => {
  const closed: string[] = []
  const ctx: Ctx = { tracing: 't', w: 'w', redis: 'r' }
  const outcome = await release(ctx, {
    tracing: (t) => { closed.push(t) },
    w: () => { throw new Error('w.close failed') },
    redis: (r) => { closed.push(r) },
  }).then(() => 'resolved', (err: Error) => err.message)
  assert.is(outcome, 'w.close failed')
  assert.equal(closed, ['t', 'r'], 'global state first, and every other closer still ran')
  // a second teardown (after.each, then after) closes nothing twice
  await release(ctx, { tracing: (t) => { closed.push(`${t} again`) }, redis: (r) => { closed.push(`${r} again`) } })
  assert.equal(closed, ['t', 'r'])
})

Release('two closers that throw are reported together', async () => {
  const ctx: Ctx = { w: 'w', redis: 'r' }
  const err = await release(ctx, { w: () => { throw new Error('one') }, redis: async () => { throw new Error('two') } }).then(() => undefined, (e: unknown) => e)
  assert.instance(err, AggregateError)
  assert.equal((err as AggregateError).errors.map((e: Error) => e.message), ['one', 'two'])
})

Release.run()
