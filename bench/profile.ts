/**
 * Runs one registered scenario once (no baselines, no report) and writes a V8 CPU profile of its timed part:
 *
 *   npx tsx bench/profile.ts pipeline-store 20000 [github|1kb|small] [durationSeconds]   → /tmp/hookstream-prof/<scenario>.cpuprofile
 *   npx tsx bench/cpuprofile-summary.ts /tmp/hookstream-prof/pipeline-store.cpuprofile
 *
 * The profile covers run() only (inspector Profiler, 250 µs sampling; the same format as `node --cpu-prof`,
 * which would also catch server start, module loading and the untimed preload). Prints the run's events/s and
 * Node CPU µs per event (process.cpuUsage over run(), as the bench does) and PostgreSQL's (its server's processes,
 * from /proc, over run()), that of the child processes run() starts (the transform pool's workers) and the GC pauses V8 reports. PROFILE_DIR
 * changes the directory.
 *
 * PROFILE_HEAP=1 also samples allocations over run() (inspector HeapProfiler, one sample per 32 KB allocated on
 * average, objects collected since included) into `<scenario>.heapprofile` (Chrome DevTools' Memory tab opens
 * it) and prints the allocation sites that allocated most, by self size.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { PerformanceObserver } from 'node:perf_hooks'
import { cleanupRun, openBenchEnv, prepareRun } from './bench-env.js'
import { collectGarbage } from './collect-garbage.js'
import { childrenCpuSeconds, processTreeCpu, processTreeCpuSince } from './fleet.js'
import type { PayloadKind } from './payloads.js'
import { SCENARIOS } from './scenarios/index.js'

const [name = 'pipeline-store', eventsText = '20000', payload = 'github', durationText] = process.argv.slice(2)
const scenario = SCENARIOS.find((s) => s.name === name)
if (!scenario) throw new RangeError(`profile: no scenario "${name}"; known: ${SCENARIOS.map((s) => s.name).join(', ')}`)
const env = await openBenchEnv()
try {
  const ctx = await prepareRun(env, {
    events: Number(eventsText), payload: payload as PayloadKind, progress: () => {},
    ...(durationText ? { durationSeconds: Number(durationText) } : {}),
  })
  try {
    await scenario.setup?.(ctx)
    // as `npm run bench` does: setup's garbage (a preloaded backlog) is not the run's
    collectGarbage()
    const session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 250 })
    // the postmaster's pid is the first line of postmaster.pid in its data directory
    const dataDir = (await ctx.pool.query<{ data_directory: string }>('SHOW data_directory')).rows[0]?.data_directory
    const postmaster = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0])
    // GC pauses as V8 reports them (main-thread time; the profile's "(garbage collector)" samples also count
    // incremental marking steps and time the thread was preempted while in GC)
    let gcPauseMs = 0
    const gcObserver = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcPauseMs += e.duration })
    gcObserver.observe({ entryTypes: ['gc'] })
    const heap = process.env.PROFILE_HEAP === '1'
    if (heap) {
      await session.post('HeapProfiler.enable')
      await session.post('HeapProfiler.startSampling', { samplingInterval: 32 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    }
    await session.post('Profiler.start')
    const pg0 = processTreeCpu(postmaster)
    const cpu0 = process.cpuUsage()
    const children0 = childrenCpuSeconds()
    const t0 = performance.now()
    const result = await scenario.run(ctx)
    const seconds = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    const pgCpu = processTreeCpuSince(pg0, processTreeCpu(postmaster))
    const childrenCpu = childrenCpuSeconds() - children0
    const { profile } = await session.post('Profiler.stop')
    const heapProfile = heap ? (await session.post('HeapProfiler.stopSampling')).profile : undefined
    gcObserver.disconnect()
    session.disconnect()
    const dir = process.env.PROFILE_DIR ?? '/tmp/hookstream-prof'
    mkdirSync(dir, { recursive: true })
    writeFileSync(`${dir}/${name}.cpuprofile`, JSON.stringify(profile))
    if (heapProfile) {
      writeFileSync(`${dir}/${name}.heapprofile`, JSON.stringify(heapProfile))
      printAllocationSites(heapProfile, result.events)
    }
    console.log(`${name}: ${result.events} events in ${seconds.toFixed(2)} s = ${Math.round(result.events / seconds)} events/s; ` +
      `Node CPU ${((cpu.user + cpu.system) / result.events).toFixed(1)} µs/event (user ${(cpu.user / result.events).toFixed(1)}, system ${(cpu.system / result.events).toFixed(1)}); ` +
      `PostgreSQL CPU ${(pgCpu * 1e6 / result.events).toFixed(1)} µs/event; ` +
      `child processes' CPU ${(childrenCpu * 1e6 / result.events).toFixed(1)} µs/event; ` +
      `GC pauses ${gcPauseMs.toFixed(0)} ms = ${(gcPauseMs * 1000 / (cpu.user + cpu.system) * 100).toFixed(1)}% of Node CPU; ` +
      `profile: ${dir}/${name}.cpuprofile${result.extra ? `; ${JSON.stringify(result.extra)}` : ""}`)
  } finally {
    await scenario.teardown?.(ctx)
    await cleanupRun(env, ctx)
  }
} finally {
  await env.close()
}

interface HeapNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: HeapNode[] }

// the allocation sites of a sampling heap profile by self size, as bytes per event
function printAllocationSites(profile: { head: HeapNode }, events: number): void {
  const sites = new Map<string, number>()
  let total = 0
  const walk = (node: HeapNode, parent: string) => {
    const { functionName, url, lineNumber } = node.callFrame
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(process.cwd() + '/', '')
    const here = functionName || url ? `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}` : parent
    sites.set(here, (sites.get(here) ?? 0) + node.selfSize)
    total += node.selfSize
    for (const child of node.children) walk(child, here)
  }
  walk(profile.head, '(root)')
  console.log(`allocated ~${(total / events).toFixed(0)} B/event (sampled); top sites:`)
  for (const [site, bytes] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`  ${(bytes / events).toFixed(0).padStart(7)} B/event  ${(bytes / total * 100).toFixed(1).padStart(5)}%  ${site}`)
  }
}
