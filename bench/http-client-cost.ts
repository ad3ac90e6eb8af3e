/**
 * Node CPU per forwarded request: global fetch (undici, as ForwardSink uses it) vs node:http with a keep-alive
 * Agent, both POSTing the same ~10 KB JSON bodies to a loopback receiver in a child process, 10 in flight.
 *
 *   npx tsx bench/http-client-cost.ts [requests=5000] [concurrency=10]
 */
import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { createInterface } from 'node:readline'
import { githubExamples } from './payloads.js'

const total = Number(process.argv[2] ?? 5000)
const concurrency = Number(process.argv[3] ?? 10)
const bodies = githubExamples().slice(0, 50).map((e) => JSON.stringify({ id: 'x', payload: e.payload }))

const child = spawn(process.execPath, ['--import', 'tsx', new URL('./scenarios/forward-receiver-child.ts', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] })
const port = await new Promise<number>((resolve) => {
  createInterface({ input: child.stdout }).on('line', (l) => { if (l.startsWith('listening ')) resolve(Number(l.slice(10))) })
})
const url = `http://127.0.0.1:${port}/hook`

async function viaFetch(i: number): Promise<void> {
  const abort = new AbortController()
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[i % bodies.length], signal: abort.signal, redirect: 'manual' })
  await res.body?.cancel()
  if (res.status !== 200) throw new Error(`status ${res.status}`)
}

const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
function viaHttp(i: number): Promise<void> {
  const body = bodies[i % bodies.length] as string
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function measure(name: string, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => { while (next < total) await one(next++) }))
  const s = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  console.log(`${name.padEnd(10)} ${Math.round(total / s)} req/s, Node CPU ${((cpu.user + cpu.system) / total).toFixed(0)} µs/request`)
}

for (let round = 0; round < 2; round++) {
  await measure('fetch', viaFetch)
  await measure('node:http', viaHttp)
}
agent.destroy()
child.kill('SIGTERM')
