/**
 * Child process of the latency scenarios: an open-loop producer. It POSTs signed GitHub webhooks at a fixed
 * rate for a fixed time, whether or not earlier requests were answered (sockets capped at `maxSockets`; beyond
 * that requests wait in the agent, and the achieved rate shows it). Prints `progress <n>` and one
 * `result <json>` line: sent, accepted (2xx), failed (and why, by status or error code), achieved rate and the HTTP response times.
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'

interface Input { url: string; path: string; bodiesFile: string; ratePerSec: number; durationMs: number; idPrefix: string; maxSockets: number }
const input = JSON.parse(process.argv[2] ?? '{}') as Input
const bodies = JSON.parse(readFileSync(input.bodiesFile, 'utf8')) as { event: string; body: string; signature: string }[]
const target = new URL(input.path, input.url)
const agent = new Agent({ keepAlive: true, maxSockets: input.maxSockets })
const httpMs: number[] = []
let sent = 0
let accepted = 0
let failed = 0
// why requests failed: HTTP status or error code → count
const failures: Record<string, number> = {}
const fail = (why: string) => { failed++; failures[why] = (failures[why] ?? 0) + 1 }
let answered = 0

function send(i: number): void {
  const b = bodies[i % bodies.length]!
  const t0 = performance.now()
  const req = request(target, {
    method: 'POST', agent,
    headers: {
      'content-type': 'application/json', 'content-length': Buffer.byteLength(b.body), 'x-github-event': b.event,
      'x-github-delivery': `${input.idPrefix}${i}`, 'x-hub-signature-256': b.signature,
    },
  }, (res) => {
    res.resume()
    res.on('end', () => {
      httpMs.push(performance.now() - t0)
      if (res.statusCode !== undefined && res.statusCode < 300) accepted++
      else fail(`HTTP ${res.statusCode}`)
      if (++answered % 1000 === 0) console.log(`progress ${answered}`)
    })
  })
  req.on('error', (err: NodeJS.ErrnoException) => { fail(err.code ?? err.message); answered++ })
  req.end(b.body)
}

const start = performance.now()
await new Promise<void>((resolve) => {
  const tick = setInterval(() => {
    const elapsed = performance.now() - start
    const due = Math.floor((Math.min(elapsed, input.durationMs) / 1000) * input.ratePerSec)
    while (sent < due) send(sent++)
    if (elapsed >= input.durationMs) { clearInterval(tick); resolve() }
  }, 2)
})
const sendSeconds = (performance.now() - start) / 1000
const deadline = Date.now() + 30_000
while (answered < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
const seconds = (performance.now() - start) / 1000
httpMs.sort((a, b) => a - b)
const q = (p: number) => httpMs[Math.min(httpMs.length - 1, Math.floor(p * httpMs.length))] ?? NaN
agent.destroy()
console.log(`result ${JSON.stringify({ sent, accepted, failed, failures, unanswered: sent - answered, sendSeconds, seconds, httpP50Ms: q(0.5), httpP99Ms: q(0.99), httpMaxMs: httpMs[httpMs.length - 1] ?? NaN })}`)
