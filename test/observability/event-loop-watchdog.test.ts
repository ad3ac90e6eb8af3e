import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEventLoopWatchdog } from '../../src/observability/event-loop-watchdog.js'

const Watchdog = suite('event-loop watchdog')

function block(ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* stall the loop on purpose */ }
}

Watchdog('a free-running loop is not stalled and shows a small lag', async () => {
  const watchdog = startEventLoopWatchdog({ stallMs: 200 })
  try {
    await sleep(150)
    const state = watchdog.state()
    assert.is(state.stalled, false)
    assert.ok(state.lagMs < 100, `lag ${state.lagMs}`)
  } finally {
    watchdog.close()
  }
})

Watchdog('a block longer than stallMs reads as stalled during it, right after it, and clears after stallMs', async () => {
  const watchdog = startEventLoopWatchdog({ stallMs: 100 })
  try {
    await sleep(50)
    block(250)
    const during = watchdog.state()
    assert.is(during.stalled, true, 'the overdue tick shows before the timer runs again')
    await sleep(30)
    const after = watchdog.state()
    assert.is(after.stalled, true, 'the stall is remembered for stallMs')
    assert.ok(after.lagMs >= 100, `lag ${after.lagMs}`)
    await sleep(200)
    assert.is(watchdog.state().stalled, false)
  } finally {
    watchdog.close()
    watchdog.close()
  }
})

Watchdog('rejects a stallMs below 10, naming the option', () => {
  try {
    startEventLoopWatchdog({ stallMs: 1 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"stallMs" must be a number of milliseconds of at least 10; got 1/)
  }
})

Watchdog.run()
