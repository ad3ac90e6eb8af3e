/** Test helpers for Prometheus text expositions: a small parser and promtool lookup. */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

/** One sample line: `name{a="x",b="y"} value` → key `name{a="x",b="y"}` exactly as exposed. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line)
    if (!m) throw new Error(`exposition line does not parse: ${JSON.stringify(line)}`)
    samples.set(m[1] as string, Number(m[2]))
  }
  return samples
}

/** The sum of the samples of `name` whose labels include every one of `labels`; 0 when none was exposed. */
export function sampleTotal(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let total = 0
  for (const [key, v] of samples) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(key)
    if (m?.[1] !== name) continue
    const have: string[] = (m[2] ?? '').match(/[a-z_]+="[^"]*"/g) ?? []
    if (wanted.every((w) => have.includes(w))) total += v
  }
  return total
}

/** Metric family names declared with `# TYPE`. */
export function familyNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1] as string))
}

/**
 * promtool from $PROMTOOL or PATH; throws with install instructions when absent (tests that need it fail).
 * Install: `apt-get install prometheus`, or without the service:
 * `apt-get download prometheus && dpkg-deb -x prometheus_*.deb /tmp/prom && export PROMTOOL=/tmp/prom/usr/bin/promtool`.
 */
export function promtool(): string {
  const env = process.env.PROMTOOL
  if (env && existsSync(env)) return env
  const which = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' })
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim()
  throw new Error('promtool not found on PATH or in $PROMTOOL; install it: apt-get download prometheus && ' +
    'dpkg-deb -x prometheus_*.deb /tmp/prom && export PROMTOOL=/tmp/prom/usr/bin/promtool')
}

/** Runs promtool with `args` (stdin `input`), returning exit status and output. */
export function runPromtool(args: string[], input?: string): { status: number | null; output: string } {
  const res = spawnSync(promtool(), args, { input, encoding: 'utf8', timeout: 20_000 })
  return { status: res.status, output: `${res.stdout ?? ''}${res.stderr ?? ''}` }
}
