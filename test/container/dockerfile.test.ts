import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { loadConfig } from '../../src/config/load-config.js'
import { healthyServer, readText } from './manifest-helpers.js'

interface Instruction { readonly op: string; readonly args: string; readonly stage: number }

/** The Dockerfile's instructions with continuation lines joined and comments dropped. */
function instructions(): Instruction[] {
  const lines = readText('Dockerfile').split('\n').filter((l) => !/^\s*#/.test(l))
  const joined = lines.join('\n').replace(/\\\n/g, ' ').split('\n').filter((l) => l.trim() !== '')
  let stage = -1
  return joined.map((line) => {
    const m = /^\s*(\w+)\s+(.*)$/.exec(line)
    if (!m) throw new Error(`Dockerfile: cannot read line ${JSON.stringify(line)}`)
    const op = (m[1] as string).toUpperCase()
    if (op === 'FROM') stage++
    return { op, args: (m[2] as string).trim(), stage }
  })
}

/** Runs `node …args` with HEALTH_ENDPOINT set, asynchronously (the health server lives in this process). */
function runNode(args: string[], healthEndpoint: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, HEALTH_ENDPOINT: healthEndpoint }, timeout: 10_000 })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stderr }))
  })
}

const Dockerfile = suite('Dockerfile')
const defaults = loadConfig({ env: {} })

Dockerfile('builds from node:24-bookworm-slim in stages, with production dependencies only in the final one', () => {
  const all = instructions()
  const froms = all.filter((i) => i.op === 'FROM')
  assert.ok(froms.length >= 2, `expected a multi-stage build; got ${froms.length} FROM`)
  for (const from of froms) assert.match(from.args, /^node:24-bookworm-slim\b/)
  const last = froms.length - 1
  const runs = all.filter((i) => i.op === 'RUN').map((i) => i.args)
  assert.ok(runs.some((r) => /npm ci\b/.test(r) && !/--omit=dev/.test(r)), 'a build stage runs npm ci with dev dependencies')
  assert.ok(runs.some((r) => /npm run build/.test(r)), 'a build stage runs npm run build')
  assert.ok(runs.some((r) => /npm ci .*--omit=dev/.test(r)), 'production dependencies come from npm ci --omit=dev')
  const finalCopies = all.filter((i) => i.stage === last && i.op === 'COPY').map((i) => i.args)
  assert.ok(finalCopies.some((c) => /--from=\w+ \/app\/dist/.test(c)), 'the final stage copies the compiled dist')
  assert.not.ok(finalCopies.some((c) => /^(\.|src)\b/.test(c)), 'the final stage does not copy sources')
  assert.not.ok(all.some((i) => i.stage === last && i.op === 'RUN' && /npm ci\b/.test(i.args)),
    'no dev dependencies are installed in the final stage')
})

Dockerfile('runs node directly as the non-root node user, with run as the default command', () => {
  const all = instructions()
  const finalStage = Math.max(...all.map((i) => i.stage))
  const final = all.filter((i) => i.stage === finalStage)
  assert.equal(final.filter((i) => i.op === 'USER').map((i) => i.args), ['node'])
  assert.equal(JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')?.args ?? 'null'), ['node', 'dist/src/cli/main.js'])
  assert.equal(JSON.parse(final.find((i) => i.op === 'CMD')?.args ?? 'null'), ['run'])
  const pkg = JSON.parse(readText('package.json')) as { bin: Record<string, string> }
  assert.is(`./${JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]')[1]}`, pkg.bin.hookstream)
})

Dockerfile('the image caps V8\'s young generation with NODE_OPTIONS, which node accepts and applies', async () => {
  const all = instructions()
  const finalStage = Math.max(...all.map((i) => i.stage))
  const env = all.filter((i) => i.stage === finalStage && i.op === 'ENV').map((i) => i.args).join(' ')
  const nodeOptions = /\bNODE_OPTIONS=(\S+)/.exec(env)?.[1]
  assert.is(nodeOptions, '--max-semi-space-size=16')
  // node must accept the option (an unknown one in NODE_OPTIONS stops node) and cap the new space by it: keeping
  // 100,000 arrays alive while allocating more makes V8 grow the young generation as far as it may (on this
  // 24 GiB box to 64 MB without the option)
  const largestNewSpace = (options: string) => new Promise<string>((resolve, reject) => {
    const script = "const v8=require('v8');const keep=[];let max=0;for(let i=0;i<300000;i++){keep.push(new Array(64).fill(i));" +
      "if(keep.length>100000)keep.shift();if(i%1000===0)max=Math.max(max,v8.getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size)}" +
      'process.stdout.write(String(max))'
    const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, NODE_OPTIONS: options }, timeout: 30_000 })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`node exited ${code}`))))
  })
  const out = await largestNewSpace(nodeOptions ?? '')
  const size = Number(out)
  // two semi-spaces of 16 MB
  assert.ok(size > 0 && size <= 2 * 16 * 1024 * 1024, `largest new space with ${nodeOptions}: ${JSON.stringify(out)} bytes`)
})

Dockerfile('exposes the default ingest and health ports of the config', () => {
  const exposed = instructions().filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number)
  assert.equal(exposed.sort(), [defaults.http.addr.port, defaults.health.endpoint.port].sort())
})

/** The HEALTHCHECK's exec-form command. */
function healthcheckCommand(): string[] {
  const hc = instructions().find((i) => i.op === 'HEALTHCHECK')
  assert.ok(hc, 'the Dockerfile has a HEALTHCHECK')
  const m = /\bCMD\s+(\[.*\])\s*$/.exec(hc.args)
  assert.ok(m, 'HEALTHCHECK uses the exec form CMD [...] (the slim image has no curl, so it runs node)')
  return JSON.parse(m[1] as string) as string[]
}

Dockerfile('the HEALTHCHECK probes /health/live and passes against a live health server', async () => {
  const [cmd, ...args] = healthcheckCommand()
  assert.is(cmd, 'node')
  assert.match(args.join(' '), /\/health\/live/)
  assert.match(args.join(' '), new RegExp(`:${defaults.health.endpoint.port}\\b`))
  const { server, close } = await healthyServer()
  try {
    const res = await runNode(args, `127.0.0.1:${server.port}`)
    assert.is(res.code, 0, `healthcheck exit code; stderr: ${res.stderr}`)
  } finally {
    await close()
  }
})

Dockerfile('the HEALTHCHECK fails when nothing answers on the health port', async () => {
  const [, ...args] = healthcheckCommand()
  const { server, close } = await healthyServer()
  const port = server.port
  await close()
  const res = await runNode(args, `:${port}`)
  assert.is(res.code, 1)
})

Dockerfile('.dockerignore keeps local state, dependencies, build output and test data out of the context', () => {
  const ignored = new Set(readText('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')))
  for (const entry of ['node_modules', '.git', '.hookstream', 'dist', 'bench/results', 'test', '.env']) {
    assert.ok(ignored.has(entry), `.dockerignore lists ${entry}`)
  }
  for (const needed of ['src', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
    assert.not.ok(ignored.has(needed), `.dockerignore must not exclude ${needed}: the build needs it`)
  }
})

Dockerfile.run()
