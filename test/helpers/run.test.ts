import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Runs test/run.cjs on one fixture file as `npm test` runs the suite; resolves with its exit code and output. */
function runFixture(pattern: string, env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['test/run.cjs', pattern], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { out += d })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, out: out.replace(/\x1b\[[0-9;]*m/g, '') }))
  })
}

const Run = suite('test/run.cjs (the runner npm test uses)')

Run('a suite whose before hook throws makes the run exit non-zero and is named with the error', async () => {
  const { code, out } = await runFixture('fixtures/failing-before\\.fixture\\.ts$')
  assert.is(code, 1, out)
  assert.match(out, 'the before hook of suite "fixture suite whose before hook throws" (fixtures/failing-before.fixture.ts) threw')
  assert.match(out, 'fixture: before hook failed on purpose')
  assert.match(out, 'suite "fixture suite whose before hook throws" (fixtures/failing-before.fixture.ts) passed 0 of 2 tests')
  assert.match(out, /Total:\s+3\n\s+Passed:\s+1/)
  assert.not.match(out, 'suite "fixture suite that passes"', 'the passing suite is not reported')
})

Run('an after.each that throws on a half-built context fails the run, names the test, and later suites still run', async () => {
  const { code, out } = await runFixture('fixtures/half-built-teardown\\.fixture\\.ts$')
  assert.is(code, 1, out)
  assert.match(out, 'the after.each hook of suite "fixture suite whose after.each throws"')
  assert.match(out, '(test "a test that fails before building its context") threw')
  assert.match(out, /fixture suite after the broken one\s+•\s+\(1 \/ 1\)/)
})

Run('a test that hangs fails by name at its time limit and the next test runs', async () => {
  const { code, out } = await runFixture('fixtures/hang\\.fixture\\.ts$', { TEST_TIME_LIMIT_MS: '500' })
  assert.is(code, 1, out)
  assert.match(out, 'test "a test that never finishes" in suite "fixture suite with a hanging test" did not finish within 0.5 s')
  assert.match(out, /Total:\s+2\n\s+Passed:\s+1/)
})

Run('a handle left open after the last suite fails an otherwise green run', async () => {
  const { code, out } = await runFixture('fixtures/open-handle\\.fixture\\.ts$')
  assert.is(code, 1, out)
  assert.match(out, /Total:\s+1\n\s+Passed:\s+1/)
  assert.match(out, /handles still open after the last suite: .*Timeout/)
})

Run('with TEST_TRACE_HANDLES=1 a handle left open is named with where it was created', async () => {
  // the variable cleared: this run may itself run under TEST_TRACE_HANDLES=1
  const plain = await runFixture('fixtures/open-handle\\.fixture\\.ts$', { TEST_TRACE_HANDLES: '' })
  assert.match(plain.out, 'run again with TEST_TRACE_HANDLES=1')
  assert.not.match(plain.out, 'open-handle.fixture.ts:', 'no creation stack without the variable')
  const { code, out } = await runFixture('fixtures/open-handle\\.fixture\\.ts$', { TEST_TRACE_HANDLES: '1' })
  assert.is(code, 1, out)
  assert.match(out, /Timeout created at:\n\s+at .*open-handle\.fixture\.ts:\d+/)
})

Run('a green run exits 0', async () => {
  const { code, out } = await runFixture('fixtures/passing\\.fixture\\.ts$')
  assert.is(code, 0, out)
  assert.match(out, /Total:\s+1\n\s+Passed:\s+1/)
})

Run.run()
