import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EMPTY, from, lastValueFrom, toArray } from 'rxjs'
import { PipelineError } from '../../src/core/errors.js'
import { poisonGuard } from '../../src/operators/poison-guard.js'
import { envelope, asOneBatch } from './helpers.js'

const Poison = suite('poisonGuard')

Poison('an empty source stays empty', async () => {
  assert.equal(await lastValueFrom(EMPTY.pipe(asOneBatch(poisonGuard()), toArray())), [])
})

Poison('fails only entries delivered more than maxDeliveries times, with code POISON', async () => {
  const envs = [1, 3, 4, 9].map((deliveryCount) => envelope({}, { deliveryCount }))
  const out = await lastValueFrom(from(envs).pipe(asOneBatch(poisonGuard({ maxDeliveries: 3 })), toArray()))
  assert.equal(out.map((e) => e.failure?.code), [undefined, undefined, 'POISON', 'POISON'])
  assert.match(out[2]!.failure!.message, /delivered 4 times, more than maxDeliveries 3/)
})

Poison('an already-failed envelope passes through untouched', async () => {
  const failed = { ...envelope({}, { deliveryCount: 50 }), failure: new PipelineError('permanent', 'X', 'x') }
  const [out] = await lastValueFrom(from([failed]).pipe(asOneBatch(poisonGuard({ maxDeliveries: 3 })), toArray()))
  assert.is(out, failed)
})

Poison('rejects a bad maxDeliveries naming it', () => {
  assert.throws(() => poisonGuard({ maxDeliveries: 0 }), /"maxDeliveries" must be an integer of at least 1; got 0/)
})

Poison.run()
