import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

/**
 * Runs a TypeScript file in a child Node process (through tsx), hands it `input` as JSON in argv, calls
 * `onProgress` for each `progress <n>` line it prints, and resolves with the JSON of its `result <json>` line.
 * Used where a measurement needs its own process: a clean RSS, or a load generator off the server's event loop.
 *
 * @example
 * const out = await runChild<{ rps: number }>(new URL('./load.ts', import.meta.url), { url }, bar.update)
 */
export function runChild<T>(file: URL, input: unknown, onProgress?: (n: number) => void, timeoutMs = 600_000, nodeArgs: readonly string[] = []): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', file.pathname, JSON.stringify(input)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let result: T | undefined
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('progress ')) onProgress?.(Number(line.slice(9)))
      else if (line.startsWith('result ')) result = JSON.parse(line.slice(7)) as T
    })
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0 && result !== undefined) resolve(result)
      else reject(new Error(`bench child ${file.pathname} exited with ${signal ?? code}${result === undefined ? ' without a result' : ''}:\n${stderr}`))
    })
  })
}
