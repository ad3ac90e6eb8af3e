import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { CircuitBreakers, type BreakerState } from '../../src/sinks/circuit-breaker.js'

const Breaker = suite('circuit breaker')

function world(options: ConstructorParameters<typeof CircuitBreakers>[0] = {}) {
  let now = 1_000_000
  const changes: [string, BreakerState][] = []
  const breakers = new CircuitBreakers({ coolDownMs: 1000, maxCoolDownMs: 4000, ...options, now: () => now, onStateChange: (d, s) => changes.push([d, s]) })
  return { breakers, changes, tick: (ms: number) => { now += ms } }
}

Breaker('five failures in a row open the breaker; while open it admits nothing and says how long to wait', () => {
  const { breakers, changes, tick } = world()
  for (let i = 0; i < 4; i++) breakers.record('a', 'failure')
  assert.equal(breakers.admit('a'), { allowed: true }, 'four failures leave it closed')
  breakers.record('a', 'failure')
  assert.equal(changes, [['a', 'open']])
  assert.equal(breakers.admit('a'), { allowed: false, retryAfterMs: 1000 })
  tick(400)
  assert.equal(breakers.admit('a'), { allowed: false, retryAfterMs: 600 })
  assert.equal(breakers.admit('b'), { allowed: true }, 'another destination is not affected')
  assert.equal(breakers.list().map((b) => [b.destination, b.state, b.consecutiveFailures]), [['a', 'open', 5]])
})

Breaker('a success between failures resets the count', () => {
  const { breakers, changes } = world()
  for (let i = 0; i < 4; i++) breakers.record('a', 'failure')
  breakers.record('a', 'success')
  for (let i = 0; i < 4; i++) breakers.record('a', 'failure')
  assert.equal(changes, [])
  assert.equal(breakers.admit('a'), { allowed: true })
})

Breaker('a failure ratio over the window opens it even without five failures in a row', () => {
  const { breakers, changes } = world({ minRequests: 10, failureRatio: 0.5, windowMs: 10_000 })
  for (let i = 0; i < 10; i++) breakers.record('a', i % 2 ? 'failure' : 'success')
  assert.equal(changes, [['a', 'open']])
})

Breaker('after the cool-down one probe goes half-open; a failed probe doubles the cool-down, a successful one closes', () => {
  const { breakers, changes, tick } = world()
  for (let i = 0; i < 5; i++) breakers.record('a', 'failure')
  tick(1000)
  assert.equal(breakers.admit('a'), { allowed: true })
  assert.equal(breakers.admit('a').allowed, false, 'only one probe at a time')
  breakers.record('a', 'failure')
  assert.equal(breakers.admit('a'), { allowed: false, retryAfterMs: 2000 })
  tick(2000)
  assert.equal(breakers.admit('a'), { allowed: true })
  breakers.record('a', 'failure')
  tick(4000)
  assert.equal(breakers.admit('a'), { allowed: true })
  breakers.record('a', 'failure')
  assert.equal(breakers.admit('a'), { allowed: false, retryAfterMs: 4000 }, 'capped at maxCoolDownMs')
  tick(4000)
  assert.equal(breakers.admit('a'), { allowed: true })
  breakers.record('a', 'success')
  assert.equal(breakers.admit('a'), { allowed: true })
  assert.equal(breakers.list(), [])
  assert.equal(changes.map(([, s]) => s), ['open', 'half_open', 'open', 'half_open', 'open', 'half_open', 'open', 'half_open', 'closed'])
  for (let i = 0; i < 5; i++) breakers.record('a', 'failure')
  assert.equal(breakers.admit('a'), { allowed: false, retryAfterMs: 1000 }, 'closing reset the cool-down')
})

Breaker('a probe whose outcome never comes is replaced after a minute', () => {
  const { breakers, tick } = world()
  for (let i = 0; i < 5; i++) breakers.record('a', 'failure')
  tick(1000)
  assert.ok(breakers.admit('a').allowed)
  tick(59_000)
  assert.is(breakers.admit('a').allowed, false)
  tick(1000)
  assert.ok(breakers.admit('a').allowed)
})

Breaker('a probe asked for long after its time is still a probe: the breaker is not forgotten under it', () => {
  const { breakers, changes, tick } = world({ failureThreshold: 1 })
  breakers.record('a', 'failure')
  // later than the idle watch would forget it, before its timer ran
  tick(10_000)
  assert.equal(breakers.admit('a'), { allowed: true })
  breakers.record('a', 'failure')
  assert.equal(changes, [['a', 'open'], ['a', 'half_open'], ['a', 'open']])
  assert.equal(breakers.list().map((b) => [b.destination, b.state]), [['a', 'open']])
  breakers.close()
})

Breaker('options are checked when the breakers are built, naming the option', () => {
  assert.throws(() => new CircuitBreakers({ failureThreshold: 0 }), /"failureThreshold" must be an integer of at least 1/)
  assert.throws(() => new CircuitBreakers({ failureRatio: 1.5 }), /"failureRatio" must be above 0 and at most 1/)
  assert.throws(() => new CircuitBreakers({ coolDownMs: 5000, maxCoolDownMs: 1000 }), /"maxCoolDownMs" \(1000\) must be at least "coolDownMs" \(5000\)/)
})

Breaker.run()
