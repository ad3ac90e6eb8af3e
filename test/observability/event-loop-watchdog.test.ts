import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEventLoopWatchdog } from '../../src/observability/event-loop-watchdog.js'
import { eventually } from '../helpers/events.js'

const Watchdog = suite('event-loop watchdog')

function block(ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* stall the loop on purpose */ }
}

Watchdog('a free-running loop is not stalled and shows the lag the loop really had', async () => {
  const watchdog = startEventLoopWatchdog({ stallMs: 200 })
  // an independent probe measures how late the loop really ran meanwhile: on a busy machine that is not 0,
  // and the watchdog must report that, not a fixed small number
  let maxLateMs = 0
  let expected = performance.now() + 5
  const probe = setInterval(() => { const now = performance.now(); maxLateMs = Math.max(maxLateMs, now - expected); expected = now + 5 }, 5)
  try {
    await sleep(150)
    const state = watchdog.state()
    assert.ok(state.lagMs <= maxLateMs + 20, `watchdog lag ${state.lagMs} ms, the loop was at most ${maxLateMs.toFixed(1)} ms late`)
    assert.is(state.stalled, state.lagMs > 200)
  } finally {
    clearInterval(probe)
    watchdog.close()
  }
})

Watchdog('a block longer than stallMs reads as stalled during it, right after it, and clears after stallMs', async () => {
  // stallMs 300 and a 700 ms block: the check right after the block has 300 ms of slack on a busy machine
  const watchdog = startEventLoopWatchdog({ stallMs: 300 })
  try {
    await sleep(50)
    block(700)
    const during = watchdog.state()
    assert.is(during.stalled, true, 'the overdue tick shows before the timer runs again')
    await new Promise((r) => setImmediate(r))
    const after = watchdog.state()
    assert.is(after.stalled, true, 'the stall is remembered for stallMs')
    assert.ok(after.lagMs >= 300, `lag ${after.lagMs}`)
    await eventually('the stall clears once the loop runs freely for stallMs', () => !watchdog.state().stalled, 10_000)
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
