import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { defineWorker, DEFAULT_COMMAND_RETRY } from '../../src/commands/command-worker.js'

const Define = suite('defineWorker')

function message(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return (err as Error).message
  }
  return assert.unreachable('expected a throw') as never
}

const noop = () => {}

Define('builds routes by command name, with defaults filled in', () => {
  const w = defineWorker({
    name: 'features',
    description: 'Processes features',
    state: { n: 0 },
    commands: { 'feature/process': noop, 'feature/update': { schema: { id: 'string' }, handle: noop } },
    periodic: { every: '5s', run: noop },
  })
  assert.equal([...w.routes.keys()], ['feature/process', 'feature/update'])
  assert.equal(w.routes.get('feature/update')?.schema, { id: 'string' })
  assert.is(w.routes.get('feature/process')?.schema, undefined)
  assert.equal(w.state, { n: 0 })
  assert.is(w.concurrency, 16)
  assert.is(w.maxDeliveries, 10)
  assert.is(w.startId, '$')
  assert.equal(w.retry, DEFAULT_COMMAND_RETRY)
  assert.equal(w.periodic && { everyMs: w.periodic.everyMs, slowMs: w.periodic.slowMs }, { everyMs: 5000, slowMs: 1000 })
})

Define('sequential means a concurrency of 1; retry fields merge over the defaults', () => {
  const w = defineWorker({ name: 'seq', description: 'd', commands: { a: noop }, sequential: true, concurrency: 8, retry: { maxRetries: 1 } })
  assert.is(w.concurrency, 1)
  assert.is(w.retry.maxRetries, 1)
  assert.is(w.retry.initialIntervalMs, DEFAULT_COMMAND_RETRY.initialIntervalMs)
})

Define('bad definitions fail at once, naming the option', () => {
  assert.match(message(() => defineWorker({ name: '', description: 'd', commands: { a: noop } })), /"name" must be a non-empty name/)
  assert.match(message(() => defineWorker({ name: 'has space', description: 'd', commands: { a: noop } })), /"name"/)
  assert.match(message(() => defineWorker({ name: 'w', description: ' ', commands: { a: noop } })), /defineWorker\("w"\): "description"/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: {} })), /at least one command/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: { a: 5 as never } })), /command "a" must be a function or \{ schema, handle \}/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: { a: { schema: { id: 'text' as never }, handle: noop } } })),
    /command "a": schema field "id"/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: { a: noop }, periodic: { every: 'often', run: noop } })),
    /"periodic.every" must be a duration/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: { a: noop }, concurrency: 0 })), /"concurrency" must be an integer of at least 1; got 0/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: { a: noop }, retry: { maxRetries: -1 } })), /"retry.maxRetries"/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: { a: noop }, startId: 'latest' })), /"startId"/)
  assert.match(message(() => defineWorker({ name: 'w', description: 'd', commands: { a: noop }, sequential: 'yes' as never })), /"sequential" must be true or false/)
})

Define('a worker with only periodic work is fine', () => {
  const w = defineWorker({ name: 'ticker', description: 'd', commands: {}, periodic: { every: 100, run: noop } })
  assert.is(w.routes.size, 0)
  assert.is(w.periodic?.everyMs, 100)
})

Define('a periodic interval longer than a timer can wait (about 24.8 days) is refused, not run every millisecond', () => {
  // Node runs a setInterval over 2147483647 ms every 1 ms
  assert.match(message(() => defineWorker({ name: 'monthly', description: 'd', commands: {}, periodic: { every: '30d', run: noop } })),
    /defineWorker\("monthly"\): "periodic.every" must be at most 2147483647 ms \(about 24 days\); got "30d"/)
  assert.is(defineWorker({ name: 'w', description: 'd', commands: {}, periodic: { every: '24d', run: noop } }).periodic?.everyMs, 24 * 86_400_000)
})

Define.run()
