/**
 * `npm run bench [-- --scenario a,b* --events N --payload github|1kb|small --repeat R --file my-scenario.ts]`
 *
 * Starts its own Redis and PostgreSQL (or uses REDIS_URL / DATABASE_URL), runs the chosen scenarios and their
 * baselines interleaved, and writes bench/results/<date>.json and .md (the markdown also goes to stdout).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { cleanupRun, openBenchEnv, prepareRun } from './bench-env.js'
import { collectGarbage } from './collect-garbage.js'
import { baselinesOf, type Scenario, type ScenarioContext } from './define-scenario.js'
import { PAYLOAD_KINDS, type PayloadKind } from './payloads.js'
import { progressBar } from './progress.js'
import { markdown, summarize, type RunRecord } from './report.js'
import { SCENARIOS } from './scenarios/index.js'
import { selectNames } from './stats.js'

const HELP = `usage: npm run bench -- [options]
  --scenario LIST   comma-separated names or globs (default: all); their baselines are added
  --events N        events (or requests) per run for every chosen scenario (default: each scenario's own)
  --payload KIND    ${PAYLOAD_KINDS.join('|')} (default: each scenario's own, mostly github)
  --repeat R        runs per scenario, interleaved (default: each scenario's own, mostly 3)
  --duration S      seconds of load for the latency scenarios (default 20)
  --file PATH       a module whose default export is a scenario or an array of them (repeatable)
  --list            print the scenarios and exit`

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value.replace(/_/g, ''))
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`bench: --${name} must be an integer of at least 1; got ${JSON.stringify(value)}`)
  return n
}

function isScenario(value: unknown): value is Scenario {
  return typeof value === 'object' && value !== null && typeof (value as Scenario).name === 'string' && typeof (value as Scenario).run === 'function'
}

async function loadFile(path: string): Promise<Scenario[]> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>
  const found = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v])).filter(isScenario)
  if (found.length === 0) throw new TypeError(`bench: ${path} exports no scenario; export defineScenario({ … }) (default or named)`)
  return found
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string' }, events: { type: 'string' }, payload: { type: 'string' }, repeat: { type: 'string' }, duration: { type: 'string' },
      file: { type: 'string', multiple: true }, list: { type: 'boolean' }, help: { type: 'boolean' },
    },
  })
  if (values.help) { console.log(HELP); return }
  const events = positive('events', values.events)
  const repeat = positive('repeat', values.repeat)
  const durationSeconds = positive('duration', values.duration)
  if (values.payload !== undefined && !(PAYLOAD_KINDS as readonly string[]).includes(values.payload)) {
    throw new RangeError(`bench: --payload must be one of ${PAYLOAD_KINDS.join(', ')}; got ${JSON.stringify(values.payload)}`)
  }
  const payload = values.payload as PayloadKind | undefined
  const all = [...SCENARIOS]
  for (const file of values.file ?? []) {
    for (const s of await loadFile(file)) {
      if (all.some((x) => x.name === s.name)) throw new RangeError(`bench: scenario "${s.name}" from ${file} is already registered`)
      all.push(s)
    }
  }
  if (values.list) {
    for (const s of all) console.log(`${s.name.padEnd(22)} ${s.description}${baselinesOf(s).length ? ` (vs ${baselinesOf(s).join(', ')})` : ''}`)
    return
  }
  // a user's --file scenarios are what they came for: without --scenario, run only those (and their baselines)
  const patterns = values.scenario ?? (values.file?.length ? all.slice(SCENARIOS.length).map((s) => s.name).join(',') : undefined)
  const names = selectNames(all.map((s) => ({ name: s.name, baselines: baselinesOf(s) })), patterns)
  const chosen = all.filter((s) => names.includes(s.name))

  const startedAt = new Date()
  const env = await openBenchEnv()
  const records: RunRecord[] = []
  try {
    const rounds = Math.max(...chosen.map((s) => repeat ?? s.repeat ?? 3))
    for (let round = 0; round < rounds; round++) {
      for (const s of chosen) {
        if (round >= (repeat ?? s.repeat ?? 3)) continue
        const n = events ?? s.events ?? 20_000
        const kind = payload ?? s.payload ?? 'github'
        const bar = progressBar(`${s.name} #${round + 1}`, n)
        let ctx: ScenarioContext | undefined
        try {
          ctx = await prepareRun(env, { events: n, payload: kind, ...(durationSeconds ? { durationSeconds } : {}), progress: (d) => bar.update(d) })
          await s.setup?.(ctx)
          collectGarbage()
          const cpu0 = process.cpuUsage()
          const t0 = performance.now()
          const result = await s.run(ctx)
          const wall = (performance.now() - t0) / 1000
          const cpu = process.cpuUsage(cpu0)
          const seconds = result.seconds ?? wall
          records.push({
            scenario: s.name, round, events: result.events, payload: kind, seconds,
            rate: result.rate ?? result.events / seconds,
            cpuUsPerEvent: result.cpuUsPerEvent ?? (cpu.user + cpu.system) / result.events,
            ...(result.extra ? { extra: result.extra } : {}),
          })
        } catch (err) {
          records.push({ scenario: s.name, round, events: n, payload: kind, seconds: NaN, rate: NaN, cpuUsPerEvent: NaN, error: (err as Error).message })
          process.stderr.write(`bench: ${s.name} run ${round + 1} failed: ${(err as Error).stack ?? err}\n`)
        } finally {
          bar.done()
          if (ctx) {
            await s.teardown?.(ctx).catch((err: Error) => process.stderr.write(`bench: ${s.name} teardown failed: ${err.message}\n`))
            await cleanupRun(env, ctx)
          }
        }
        const last = records[records.length - 1] as RunRecord
        process.stderr.write(`${s.name} #${round + 1}: ${last.error ? 'FAILED' : `${Math.round(last.rate).toLocaleString('en')} ${s.unit ?? 'events/s'} (N ${last.events.toLocaleString('en')}, ${last.seconds.toFixed(2)} s)`}\n`)
      }
    }
  } finally {
    await env.close()
  }
  const summaries = summarize(chosen, records)
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
  const md = markdown(summaries, { command, servers: env.servers, startedAt: startedAt.toISOString(), seconds: (Date.now() - startedAt.getTime()) / 1000 })
  const dir = new URL('./results/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  const stamp = startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  writeFileSync(new URL(`${stamp}.json`, dir), `${JSON.stringify({ startedAt, command, node: process.version, servers: env.servers, summaries, runs: records }, null, 2)}\n`)
  writeFileSync(new URL(`${stamp}.md`, dir), md)
  console.log(md)
  console.log(`written: bench/results/${stamp}.json and .md`)
  if (records.some((r) => r.error !== undefined)) process.exitCode = 1
}

main().then(() => process.exit(), (err: Error) => { console.error(err.message); process.exit(2) })
