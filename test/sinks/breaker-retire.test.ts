import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { createMetrics } from '../../src/observability/metrics.js'
import { breakerBoard, readBreakerBoard } from '../../src/sinks/breaker-board.js'
import { CircuitBreakers, type BreakerState } from '../../src/sinks/circuit-breaker.js'
import { eventually } from '../helpers/events.js'
import { sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'
import { parseExposition } from '../observability/exposition.js'

interface Ctx { redis: Redis; breakers?: CircuitBreakers }
const Retire = suite<Ctx>('circuit breaker: a destination nobody sends to', {} as Ctx)

Retire.before.each(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Retire.after.each((ctx) => release(ctx, { breakers: (b) => b.close(), redis: (r) => r.disconnect() }))

// wired as the worker wires them: the gauge and the shared board follow every state change
function wired(ctx: Ctx, coolDownMs: number) {
  const metrics = createMetrics({ defaultMetrics: false })
  const key = `test-${randomUUID()}:breakers`
  const board = breakerBoard(ctx.redis, key, 'w1')
  const changes: [string, BreakerState][] = []
  ctx.breakers = new CircuitBreakers({ failureThreshold: 1, coolDownMs, maxCoolDownMs: coolDownMs * 2,
    onStateChange: (d, state, snap) => { changes.push([d, state]); metrics.destinationState(d, state); void board(snap) } })
  const gauge = async (d: string) => parseExposition(await metrics.metricsText()).get(`webhook_destination_state{destination="${d}"}`)
  const onBoard = async () => (await readBreakerBoard(ctx.redis, key)).map((e) => e.destination)
  return { breakers: ctx.breakers, changes, gauge, onBoard }
}

Retire('an open breaker that no delivery asks about after its cool-down is forgotten: the gauge goes to 0 and the board entry goes', async (ctx) => {
  const { breakers, changes, gauge, onBoard } = wired(ctx, 100)
  breakers.record('shop/ci', 'failure')
  assert.is(await gauge('shop/ci'), 2)
  await eventually('the board shows it open', async () => (await onBoard()).includes('shop/ci'))
  // no admit() any more: the destination was removed, disabled, or gets no traffic
  await eventually('the gauge leaves "open"', async () => (await gauge('shop/ci')) === 0, 10_000)
  await eventually('the board entry is removed', async () => (await onBoard()).length === 0)
  assert.equal(changes, [['shop/ci', 'open'], ['shop/ci', 'closed']])
  assert.equal(breakers.list(), [])
  assert.equal(breakers.admit('shop/ci'), { allowed: true }, 'its next delivery starts afresh')
})

Retire('a breaker whose parked deliveries keep coming back for probes stays open', async (ctx) => {
  const { breakers, changes, gauge } = wired(ctx, 100)
  breakers.record('shop/dead', 'failure')
  // the parked backlog: asks again now and then, and each probe fails
  const until = Date.now() + 1500
  while (Date.now() < until) {
    if (breakers.admit('shop/dead').allowed) breakers.record('shop/dead', 'failure')
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.ok(changes.filter(([, s]) => s === 'half_open').length >= 3, `probes went: ${JSON.stringify(changes)}`)
  assert.not.ok(changes.some(([, s]) => s === 'closed'), 'never forgotten while asked about')
  assert.is(await gauge('shop/dead'), 2)
})

Retire.run()
