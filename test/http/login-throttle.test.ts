import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { LoginThrottle } from '../../src/http/login-throttle.js'

const Throttle = suite('LoginThrottle')

Throttle('an address is refused after maxFailures failures, for the rest of the window', () => {
  const throttle = new LoginThrottle({ maxFailures: 3, windowMs: 60_000 })
  for (let i = 0; i < 2; i++) throttle.failed('10.0.0.1')
  assert.is(throttle.retryAfterMs('10.0.0.1'), 0)
  throttle.failed('10.0.0.1')
  const wait = throttle.retryAfterMs('10.0.0.1')
  assert.ok(wait > 59_000 && wait <= 60_000, `waits ${wait} ms`)
  assert.is(throttle.retryAfterMs('10.0.0.2'), 0)
})

Throttle('memory is bounded: past maxAddresses the least recently seen address is forgotten', () => {
  const throttle = new LoginThrottle({ maxFailures: 2, windowMs: 60_000, maxAddresses: 100 })
  throttle.failed('keep')
  throttle.failed('keep')
  for (let i = 0; i < 10_000; i++) {
    throttle.failed(`10.1.${i >> 8}.${i & 255}`)
    // touching the refused address keeps it the most recent, so the flood does not evict it
    if (i % 50 === 0) throttle.failed('keep')
  }
  assert.is(throttle.size, 100)
  assert.ok(throttle.retryAfterMs('keep') > 0)
  assert.is(throttle.retryAfterMs('10.1.0.0'), 0)
})

Throttle('a success forgets that address only', () => {
  const throttle = new LoginThrottle({ maxFailures: 1 })
  throttle.failed('a')
  throttle.failed('b')
  throttle.succeeded('a')
  assert.is(throttle.retryAfterMs('a'), 0)
  assert.ok(throttle.retryAfterMs('b') > 0)
  assert.throws(() => new LoginThrottle({ maxFailures: 0 }), /"maxFailures" must be an integer of at least 1/)
})

Throttle.run()
