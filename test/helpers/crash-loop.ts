/** Runs a worker script as a child process again and again, as a supervisor restarts a worker that keeps crashing. */
import { spawn } from 'node:child_process'

/** Options of `restartUntilSettled`. */
export interface RestartUntilSettledOptions {
  /** The script, run with `node --import tsx` from the repository's directory (e.g. `test/reliability/crashing-worker-child.ts`). */
  readonly script: string
  /** Environment of run `run` (1, 2, …), on top of this process's. */
  readonly env: (run: number) => Record<string, string>
  /** Whether the work is done (e.g. nothing pending and nothing unread), polled while a run is alive. */
  readonly settled: () => Promise<boolean>
  /** Runs allowed before the loop fails: a worker that still dies then crash-loops. */
  readonly maxRuns: number
  /** Longest one run may take to die or settle the work (ms). @defaultValue 90000 */
  readonly runTimeoutMs?: number
}

/**
 * Starts `script`; whenever it exits before `settled()` holds, starts it again (the next run); once a run sees
 * the work settled, stops that run with SIGTERM and resolves with the exit code (or signal) and output of each run
that died, in order.
 * Fails when a run neither dies nor settles the work within `runTimeoutMs`, or after `maxRuns` runs.
 */
export async function restartUntilSettled(options: RestartUntilSettledOptions): Promise<{ code: number | string; output: string }[]> {
  const exits: { code: number | string; output: string }[] = []
  for (let run = 1; ; run++) {
    if (run > options.maxRuns) throw new Error(`the worker still dies after ${exits.length} runs (exits ${exits.map((e) => e.code).join(', ')})`)
    const child = spawn(process.execPath, ['--import', 'tsx', options.script], {
      cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env(run) },
    })
    let out = ''
    child.stdout?.on('data', (d) => { out += d })
    child.stderr?.on('data', (d) => { out += d })
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
    const alive = () => child.exitCode === null && child.signalCode === null
    try {
      const deadline = Date.now() + (options.runTimeoutMs ?? 90_000)
      while (alive() && !(await options.settled())) {
        if (Date.now() > deadline) throw new Error(`run ${run} neither settled the work nor died within ${options.runTimeoutMs ?? 90_000} ms:\n${out}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      if (alive()) return exits
      exits.push({ code: await exited, output: out })
    } finally {
      if (alive()) child.kill('SIGTERM')
      await exited
    }
  }
}
