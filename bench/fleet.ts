/**
 * Pieces shared by the multi-process benches (soak, scale): signed GitHub bodies, a tools YAML, `hookstream run`
 * processes with a role, and per-process RSS / CPU read from /proc.
 */
import { createHmac } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServiceProcess, type ServiceProcess } from '../test/helpers/service-process.js'
import { makeEvents, type PayloadKind } from './payloads.js'

export const BENCH_TOOL = 'bench-tool'
const SECRET = 'bench-soak-secret'

/** YAML with the one `store` tool every fleet bench posts to. */
export const FLEET_YAML = `tools:\n  - { id: ${BENCH_TOOL}, provider: github, secret: ${SECRET}, tenant_id: bench, processing_mode: store }\n`

/** Writes the distinct signed bodies (329 GitHub examples, or one synthetic body) to a file; returns its path. */
export function writeSignedBodies(payload: PayloadKind): string {
  const distinct = makeEvents(payload, payload === 'github' ? 329 : 1, 'b-')
  const bodies = distinct.map((e) => {
    const body = JSON.stringify(e.payload)
    return { event: e.event_type.split('.').slice(2).join('.') || 'bench', body, signature: `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` }
  })
  const file = join(mkdtempSync(join(tmpdir(), 'hookstream-fleet-')), 'bodies.json')
  writeFileSync(file, JSON.stringify(bodies))
  return file
}

/** One `hookstream run --role <role>` child. */
export interface FleetProcess {
  readonly name: string
  readonly role: string
  readonly svc: ServiceProcess
}

/**
 * Starts `hookstream run --role <role>` with the fleet's tools; resolves once it is ready. `compiled` runs
 * `dist` with plain node, as the container does, instead of `src` through tsx.
 */
export async function startRole(name: string, role: 'ingest' | 'worker' | 'all', env: Record<string, string>, compiled = false): Promise<FleetProcess> {
  const svc = await startServiceProcess({ WORKER_CONSUMER_NAME: name, ...env }, FLEET_YAML, ['--role', role], { compiled })
  return { name, role, svc }
}

/** SIGTERM, then wait for the exit (SIGKILL after 30 s). */
export async function stopAll(processes: readonly FleetProcess[]): Promise<void> {
  for (const p of processes) p.svc.child.kill('SIGTERM')
  await Promise.all(processes.map((p) => Promise.race([p.svc.exited, new Promise((r) => setTimeout(r, 30_000))]).then(() => p.svc.child.kill('SIGKILL'))))
}

/** RSS in MB of a process (VmRSS), or NaN when it is gone. */
export function rssMb(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN
  } catch {
    return NaN
  }
}

// user + system CPU seconds from a /proc/<pid>/stat line: after "pid (comm) ", state is field 0, utime 11 and
// stime 12 (clock ticks, 100 per second on Linux); comm may itself hold ") ", hence the last one
function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** CPU seconds (user + system) a process has used so far, or NaN when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return NaN
  }
}

/**
 * CPU seconds (user + system) of this process's children: the ones that ended and were reaped (`cutime` +
 * `cstime` of /proc/self/stat) plus the ones still running. Diff two readings for the CPU of worker processes a
 * run started and ended (the transform pool's).
 */
export function childrenCpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8')
  const reaped = fields.slice(fields.lastIndexOf(')') + 2).split(' ')
  let sum = (Number(reaped[13]) + Number(reaped[14])) / 100
  for (const [pid, seconds] of processTreeCpu(process.pid)) if (pid !== process.pid) sum += seconds
  return sum
}

/**
 * CPU seconds per process of one server: the process `pid` and its children (for PostgreSQL, the postmaster and
 * its backends, WAL writer, checkpointer…). Diff two readings with `processTreeCpuSince`.
 */
export function processTreeCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>()
  for (const [id, stat] of procStats()) {
    // after "pid (comm) ": state is field 0, ppid field 1
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (id === pid || ppid === pid) out.set(id, statCpuSeconds(stat))
  }
  return out
}

/** CPU seconds between two `processTreeCpu` readings (a process started in between counts from 0; one that ended is missed). */
export function processTreeCpuSince(before: ReadonlyMap<number, number>, now: ReadonlyMap<number, number>): number {
  let sum = 0
  for (const [pid, seconds] of now) sum += seconds - (before.get(pid) ?? 0)
  return sum
}

/** Busy and total CPU ticks of the whole machine so far (/proc/stat), to show how saturated a run was. */
export function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = cpu.reduce((a, b) => a + b, 0)
  // idle + iowait are not busy
  return { busy: total - (cpu[3] ?? 0) - (cpu[4] ?? 0), total }
}

// every process's /proc/<pid>/stat line, by pid (a process that ends while being read is left out)
function* procStats(): Generator<[number, string]> {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      yield [Number(entry), readFileSync(`/proc/${entry}/stat`, 'utf8')]
    } catch {
      continue
    }
  }
}

/** CPU seconds used so far per process id, for processes whose command name starts with one of the names. */
export type CommandCpu = Record<string, Map<number, number>>

/**
 * CPU seconds used so far by every process whose command name starts with one of `names` (e.g. `postgres`,
 * `redis-server`), per name and pid: what the servers on this machine cost next to hookstream. Diff two
 * readings with `commandCpuSince`.
 */
export function cpuByCommand(names: readonly string[]): CommandCpu {
  const out: CommandCpu = Object.fromEntries(names.map((n) => [n, new Map<number, number>()]))
  for (const [pid, stat] of procStats()) {
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const name = names.find((n) => comm.startsWith(n.slice(0, 15)))
    if (!name) continue
    out[name]!.set(pid, statCpuSeconds(stat))
  }
  return out
}

/**
 * CPU seconds per name between two `cpuByCommand` readings: processes that started in between count from 0;
 * those that ended in between are missed (their last ticks are gone with them), so it never goes negative.
 */
export function commandCpuSince(before: CommandCpu, now: CommandCpu): Record<string, number> {
  return Object.fromEntries(Object.entries(now).map(([name, pids]) => {
    let sum = 0
    for (const [pid, seconds] of pids) sum += seconds - (before[name]?.get(pid) ?? 0)
    return [name, sum]
  }))
}

/** Prints the report and writes it to bench/results/<name>-<date>.md (and `data` to .json); returns the .md path. */
export function writeResults(name: string, started: Date, report: string, data: unknown): string {
  console.log(report)
  const dir = new URL('./results/', import.meta.url).pathname
  mkdirSync(dir, { recursive: true })
  const base = join(dir, `${name}-${started.toISOString().replace(/[:.]/g, '-').slice(0, 19)}Z`)
  writeFileSync(`${base}.md`, `${report}\n`)
  writeFileSync(`${base}.json`, JSON.stringify(data, null, 1))
  console.error(`${name}: wrote ${base}.md`)
  return `${base}.md`
}
