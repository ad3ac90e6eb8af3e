/** Runs one `hookstream` CLI command as a real child process (tsx on src/cli/main.ts), as an operator would. */
import { spawn } from 'node:child_process'

/** What a finished CLI process printed and how it exited. */
export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs `hookstream <args>` with `env` added to this process's environment; resolves when it exits.
 *
 * @example
 * const r = await runCli(['migrate'], { DATABASE_URL: url }); assert.is(r.code, 0, r.stderr)
 */
export function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: process.cwd(), env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}
