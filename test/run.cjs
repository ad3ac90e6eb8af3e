// Runs the suite as `uvu -r tsx test '\.test\.ts$'` would, with three things uvu 0.5.6 does not do:
// - an exception in a suite's before/after/before.each/after.each hook is printed with its suite name and fails
//   the run (uvu's runner swallows it and shows the suite green with fewer tests run);
// - every test and hook has a time limit (TEST_TIME_LIMIT_MS, default 60 s; a test asks for more with
//   `withTimeLimit` from test/helpers/time-limit.ts), so a hang fails that test by name instead of the run;
// - the run fails when Passed + Skipped < Total (a suite that did not run all its tests), naming those suites,
//   and when a handle (socket, timer, child process) is still open after the last suite.
// Usage: node test/run.cjs ['<regex on the path under test/>']
const { parse } = require('uvu/parse')
const { run } = require('uvu/run')

// uvu must see UVU_DEFER before it is first loaded, or it schedules a run of its own
globalThis.UVU_DEFER = 1
const uvu = require('uvu')
// stdout/stderr (a TTY or a pipe) are open before any test and stay open
process.stderr.write('')
const baseline = process.getActiveResourcesInfo()

// TEST_TRACE_HANDLES=1: remember where each timer and socket was created, to name them when one is left open
const traced = new Map()
if (process.env.TEST_TRACE_HANDLES) {
  require('node:async_hooks').createHook({
    init(id, type, _trigger, resource) {
      if (type === 'Timeout' || type === 'TCPWRAP' || type === 'PROCESSWRAP') {
        // the frames that made it, without Node's own (async_hooks, timers, net)
        const frames = new Error().stack.split('\n').slice(2).filter((f) => !/\(node:|at node:/.test(f))
        // this runner's own timers (time limits, the final wait) are not the suite's
        if (!(frames[0] ?? '').includes('test/run.cjs')) traced.set(id, { type, resource, stack: frames.slice(0, 10).join('\n') })
      }
    },
    destroy(id) { traced.delete(id) },
  }).enable()
}
function tracedOpen() {
  return [...traced.values()].filter(({ resource }) => typeof resource.hasRef !== 'function' || resource.hasRef())
    .map(({ type, stack }) => `${type} created at:\n${stack}`)
}

/** Resources open now that were not open before the first test, by type. */
function leaked() {
  const left = [...baseline]
  return process.getActiveResourcesInfo().filter((r) => {
    const i = left.indexOf(r)
    if (i === -1) return true
    left.splice(i, 1)
    return false
  })
}

const TIME_LIMIT_KEY = Symbol.for('hookstream.test.timeLimitMs')
const defaultLimitMs = Number(process.env.TEST_TIME_LIMIT_MS ?? 60_000)
/** Hooks start servers and processes; on a loaded box that takes longer than a test. */
const hookLimitMs = Math.max(defaultLimitMs, 120_000)

const hookErrors = []
const incomplete = []
const slow = []
/** The handles open after each suite, to name the suite that left one open. */
const snapshots = []
let currentFile = ''

function timeLimited(fn, limitMs, what) {
  const ms = fn[TIME_LIMIT_KEY] ?? limitMs
  return async (state) => {
    let timer
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s (time limit; a test that needs ` +
        `longer says so with withTimeLimit from test/helpers/time-limit.ts)`)), ms)
    })
    const started = Date.now()
    try {
      return await Promise.race([fn(state), limit])
    } finally {
      clearTimeout(timer)
      const took = Date.now() - started
      if (took > ms / 2) slow.push(`${what} took ${(took / 1000).toFixed(1)} s of its ${ms / 1000} s limit`)
    }
  }
}

function guardedHook(suiteName, kind, fn) {
  const limited = timeLimited(fn, hookLimitMs, `the ${kind} hook of suite "${suiteName}"`)
  return async (state) => {
    try {
      await limited(state)
    } catch (err) {
      const test = state.__test__ ? ` (test "${state.__test__}")` : ''
      hookErrors.push({ file: currentFile, suite: suiteName, kind, test, err })
      // an after hook that throws would abort the whole run from inside uvu's `finally`: record it, go on
      if (kind !== 'after') throw err
    }
  }
}

function guarded(original, suiteName) {
  const label = suiteName || '(default suite)'
  const wrap = (add) => (name, handler) => add(name, timeLimited(handler, defaultLimitMs, `test "${name}" in suite "${label}"`))
  const test = wrap(original)
  test.only = wrap(original.only)
  test.skip = original.skip
  test.before = (fn) => original.before(guardedHook(label, 'before', fn))
  test.before.each = (fn) => original.before.each(guardedHook(label, 'before.each', fn))
  test.after = (fn) => original.after(guardedHook(label, 'after', fn))
  test.after.each = (fn) => original.after.each(guardedHook(label, 'after.each', fn))
  test.run = () => {
    original.run()
    const group = globalThis.UVU_QUEUE[globalThis.UVU_INDEX || 0]
    const runner = group[group.length - 1]
    const file = currentFile
    group[group.length - 1] = async () => {
      const result = await runner()
      snapshots.push({ suite: label, file, open: tally(leaked()) })
      const [, ran, , total] = result
      if (ran < total) incomplete.push({ file, suite: label, ran, total })
      return result
    }
  }
  return test
}

const originalSuite = uvu.suite
uvu.suite = (name, state) => guarded(originalSuite(name, state), name)
uvu.test = guarded(uvu.test, '')

function tally(types) {
  const counts = {}
  for (const t of types) counts[t] = (counts[t] ?? 0) + 1
  return counts
}

/** For each handle type still open at the end: the suite after which that many were open from then on. */
function culprits(open) {
  const final = tally(open)
  return Object.entries(final).map(([type, n]) => {
    let i = snapshots.length
    while (i > 0 && (snapshots[i - 1].open[type] ?? 0) >= n) i--
    const s = snapshots[i]
    return s ? `${n} × ${type}, open since suite "${s.suite}" (${s.file})` : `${n} × ${type}`
  })
}

function describe(err) {
  return err && err.stack ? err.stack.split('\n').slice(0, 6).join('\n      ') : String(err)
}

async function main() {
  process.env.FORCE_COLOR = '1'
  const ctx = await parse('test', process.argv[2] || '\\.test\\.ts$', { require: ['tsx'] })
  // uvu/run requires the files one by one; remember which one is loading so a suite knows its file
  // a pattern picks among suite files only (*.test.ts, and the runner's own *.fixture.ts): a script a test spawns
  // (test/operators/transform-heap-child.ts) is no suite
  const suites = ctx.suites.filter((s) => /\.(test|fixture)\.ts$/.test(s.name))
    .map((s) => ({ ...s, get file() { currentFile = s.name; return s.file } }))
  await run(suites, {})
  let failed = process.exitCode ? 1 : 0
  for (const line of slow) console.error(`test run: slow: ${line}`)
  for (const h of hookErrors) {
    failed = 1
    console.error(`test run: the ${h.kind} hook of suite "${h.suite}" (${h.file})${h.test} threw:\n      ${describe(h.err)}`)
  }
  for (const s of incomplete) {
    failed = 1
    console.error(`test run: suite "${s.suite}" (${s.file}) passed ${s.ran} of ${s.total} tests; the others failed or did not run`)
  }
  if (incomplete.length > 0) console.error(`test run: FAILED, ${incomplete.length} suite(s) did not pass all their tests`)
  else if (hookErrors.length > 0) console.error('test run: FAILED, a hook threw')
  // file writes (tsx's cache) and sockets in their close handshake finish on their own: give them 5 s
  let open = []
  for (let waited = 0; waited <= 5000; waited += 100) {
    open = leaked()
    if (open.length === 0) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (open.length > 0) {
    failed = 1
    console.error(`test run: FAILED, handles still open after the last suite: ${[...new Set(open)].join(', ')} ` +
      `(a test or hook did not close what it opened):\n      ${culprits(open).join('\n      ')}`)
    if (process.env.TEST_TRACE_HANDLES) console.error(tracedOpen().join('\n---\n'))
    else console.error('test run: run again with TEST_TRACE_HANDLES=1 to see where each open timer, socket or child was created')
  }
  process.exit(failed)
}

main().catch((err) => { console.error(err); process.exit(1) })
