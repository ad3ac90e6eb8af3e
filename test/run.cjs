// Runs the suite as `uvu -r tsx test '\.test\.ts$'` would, then exits with uvu's code. A handle some test
// leaves open (a socket, a timer) must fail that test, not hang the run until CI's time limit.
const { parse } = require('uvu/parse')
const { run } = require('uvu/run')

async function main() {
  process.env.FORCE_COLOR = '1'
  const ctx = await parse('test', process.argv[2] || '\\.test\\.ts$', { require: ['tsx'] })
  await run(ctx.suites, {})
  const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap')
  if (open.length > 0) console.error(`test run: exiting with handles still open: ${[...new Set(open)].join(', ')}`)
  process.exit(process.exitCode ?? 0)
}

main().catch((err) => { console.error(err); process.exit(1) })
