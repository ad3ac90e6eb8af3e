/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`) by self time: top functions, files and packages.
 *
 *   npx tsx bench/cpuprofile-summary.ts /tmp/hookstream-prof/CPU.*.cpuprofile [--top 30] [--from MS] [--inclusive]
 *
 * `--from MS` skips the first MS milliseconds of samples (e.g. server start and preload).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, inclusive: { type: 'boolean' }, from: { type: 'string' } } })
const top = Number(values.top ?? 25)
const fromUs = Number(values.from ?? 0) * 1000

function where(url: string): { file: string; pkg: string } {
  const path = url.replace(/^file:\/\//, '')
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = path.slice(nm + 14).split('/')
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0] ?? '?'
    return { file: `${pkg}/…/${rest[rest.length - 1]}`, pkg }
  }
  const m = /\/work\/[^/]+\/(.*)$/.exec(path)
  if (m) return { file: m[1] as string, pkg: (m[1] as string).split('/')[0] as string }
  if (path.startsWith('node:') || path === '') return { file: path || '(native/vm)', pkg: path ? 'node' : '(native/vm)' }
  return { file: path, pkg: '?' }
}

for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  let t = 0
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0
    if (t < fromUs) continue
    const dt = p.timeDeltas[i + 1] ?? 0
    self.set(p.samples[i] as number, (self.get(p.samples[i] as number) ?? 0) + dt)
    total += dt
  }
  const fn = new Map<string, number>()
  const files = new Map<string, number>()
  const pkgs = new Map<string, number>()
  for (const [id, us] of self) {
    const { callFrame } = byId.get(id) as ProfileNode
    const { file: f, pkg } = where(callFrame.url)
    const name = callFrame.functionName || '(anonymous)'
    const key = ['(idle)', '(program)', '(garbage collector)'].includes(name) ? name : `${name} ${f}:${callFrame.lineNumber + 1}`
    fn.set(key, (fn.get(key) ?? 0) + us)
    const fileKey = key.startsWith('(') && !callFrame.url ? name : f
    files.set(fileKey, (files.get(fileKey) ?? 0) + us)
    const pkgKey = key.startsWith('(') && !callFrame.url ? name : pkg
    pkgs.set(pkgKey, (pkgs.get(pkgKey) ?? 0) + us)
  }
  // inclusive time: each sample counts once for every distinct function on its stack
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const keyOf = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url).file}:${n.callFrame.lineNumber + 1}`
  const inclusive = new Map<string, number>()
  for (const [id, us] of self) {
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at) as ProfileNode
      if (node.callFrame.url.includes('/src/') || node.callFrame.url.includes('/bench/')) seen.add(keyOf(node))
    }
    for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + us)
  }
  const idle = fn.get('(idle)') ?? 0
  const busy = total - idle
  const table = (title: string, m: Map<string, number>) => {
    console.log(`\n## ${title} (self time; % of busy = total − idle)`)
    for (const [k, us] of [...m].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${((us / busy) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`)
    }
  }
  console.log(`# ${file}\nsampled ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s`)
  table('packages', pkgs)
  table('files', files)
  table('functions', fn)
  if (values.inclusive) table('project functions, inclusive (self + callees)', inclusive)
}
