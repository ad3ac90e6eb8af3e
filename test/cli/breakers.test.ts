import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { breakersCommand } from '../../src/cli/commands/breakers.js'
import { breakerBoard } from '../../src/sinks/breaker-board.js'
import { eventually } from '../helpers/events.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const Breakers = suite<{ w: CliWorld }>('hookstream breakers', {} as { w: CliWorld })
Breakers.before.each(async (ctx) => { ctx.w = await cliWorld() })
Breakers.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Breakers('list shows the open and half-open breakers each worker published, and drops one that closed', async ({ w }) => {
  const empty = await w.run(breakersCommand, ['list'])
  assert.equal([empty.code, empty.out.trim()], [0, 'every breaker is closed'])
  const one = breakerBoard(w.redis, w.keys.breakerStates, 'worker-1')
  const two = breakerBoard(w.redis, w.keys.breakerStates, 'worker-2')
  const now = Date.now()
  one({ destination: 'gh-main', state: 'open', consecutiveFailures: 5, openedAt: now, nextProbeAt: now + 10_000 })
  two({ destination: 'gh-main', state: 'half_open', consecutiveFailures: 6, openedAt: now })
  one({ destination: 'billing', state: 'open', consecutiveFailures: 5, openedAt: now, nextProbeAt: now + 10_000 })
  const listed = async () => JSON.parse((await w.run(breakersCommand, ['list'], { json: true })).out).breakers as { destination: string; worker: string; state: string }[]
  await eventually('three breakers published', async () => (await listed()).length === 3)
  assert.equal((await listed()).map((b) => [b.destination, b.worker, b.state]),
    [['billing', 'worker-1', 'open'], ['gh-main', 'worker-1', 'open'], ['gh-main', 'worker-2', 'half_open']])
  one({ destination: 'billing', state: 'closed', consecutiveFailures: 0 })
  await eventually('the closed one is gone', async () => (await listed()).length === 2)
  const human = await w.run(breakersCommand, ['list'])
  assert.match(human.out, /gh-main\s+worker-2\s+half_open\s+6/)
  const bad = await w.run(breakersCommand, ['show'])
  assert.is(bad.code, 2)
  assert.match(bad.err, /unknown subcommand "show"/)
})

Breakers.run()
