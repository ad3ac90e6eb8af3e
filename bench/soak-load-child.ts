/**
 * Child process of the soak: an open-loop producer (raw keep-alive sockets) that POSTs signed GitHub webhooks at a steady rate for a
 * fixed time, whether or not earlier requests were answered. Every `resendEvery`-th request re-sends an earlier
 * delivery id (as providers do after a timeout), which must be answered 202 duplicate and never stored twice.
 * Prints one `window <json>` line per `windowMs` (sent, accepted, duplicates, failed, HTTP p50/p99 of the
 * requests answered in the window, counted from when each request was due, so queueing shows), writes the accepted delivery indexes as a bitmap to `acceptedFile`, and
 * ends with `result <json>`.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'

interface Input {
  url: string; path: string; bodiesFile: string; ratePerSec: number; durationMs: number; idPrefix: string
  connections: number; windowMs: number; resendEvery: number; acceptedFile: string
}
const input = JSON.parse(process.argv[2] ?? '{}') as Input
const bodies = JSON.parse(readFileSync(input.bodiesFile, 'utf8')) as { event: string; body: string; signature: string }[]
const target = new URL(input.path, input.url)
// the generator must cost little next to what it measures on a 2-core box: raw keep-alive sockets, requests
// pre-built but for the delivery id, responses read by status line and Content-Length (node:http cost ~2×)
const requests = bodies.map((b) => {
  const body = Buffer.from(b.body)
  return {
    head: Buffer.from(`POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\nX-GitHub-Event: ${b.event}\r\nX-Hub-Signature-256: ${b.signature}\r\nX-GitHub-Delivery: `),
    body,
  }
})
const total = Math.ceil((input.durationMs / 1000) * input.ratePerSec)
/** 1 = accepted (stored once expected), 3 = failed. Index = delivery number. */
const state = new Uint8Array(total)
/** 1 once request n got its answer or failed: each request is counted once, whatever its socket does after. */
const done = new Uint8Array(total)
const totals = { sent: 0, answered: 0, accepted: 0, duplicates: 0, resends: 0, unexpectedDuplicates: 0, acceptedTwice: 0, failed: 0 }
let window = { sent: 0, accepted: 0, duplicates: 0, failed: 0, httpMs: [] as number[] }
const failures = new Map<string, number>()
const RESEND_BACK = 2 * input.ratePerSec + 1
const start = performance.now()
/** Requests that are due and wait for a free connection (open loop: latency counts from the due time). */
const queue: number[] = []
let queueHead = 0

interface Conn { socket: Socket; n: number; busy: boolean; buf: string; lastUsed: number }
/** Below the server's keep-alive timeout (5 s): a socket idle this long is replaced before use, so a request is never written into a close. */
const IDLE_REOPEN_MS = 2000
const conns: Conn[] = []

function fail(n: number, why: string): void {
  if (done[n]) return
  done[n] = 1
  window.failed++
  totals.failed++
  totals.answered++
  failures.set(why, (failures.get(why) ?? 0) + 1)
  const resend = isResend(n)
  if (!resend) state[n] = 3
}

function isResend(n: number): boolean {
  return input.resendEvery > 0 && n % input.resendEvery === 0 && n >= RESEND_BACK
}

function answered(n: number, status: number, body: string): void {
  if (done[n]) return
  done[n] = 1
  const resend = isResend(n)
  const delivery = resend ? n - RESEND_BACK : n
  window.httpMs.push(performance.now() - (start + (n / input.ratePerSec) * 1000))
  totals.answered++
  if (status === 202 && body.includes('"duplicate":true')) {
    window.duplicates++
    totals.duplicates++
    // a first delivery answered duplicate is fine when its re-send overtook it (accepted first); the
    // accepted-twice count below is what must stay 0
    if (!resend) totals.unexpectedDuplicates++
  } else if (status === 202) {
    window.accepted++
    totals.accepted++
    // a re-send that was accepted means the first one failed or was overtaken; the delivery is expected once
    if (state[delivery] === 1) totals.acceptedTwice++
    state[delivery] = 1
  } else {
    window.failed++
    totals.failed++
    const key = `${status} ${body.slice(0, 80)}`
    failures.set(key, (failures.get(key) ?? 0) + 1)
    if (!resend) state[delivery] = 3
  }
}

function open(): Conn {
  const c: Conn = { socket: connect(Number(target.port), target.hostname), n: -1, busy: false, buf: '', lastUsed: performance.now() }
  c.socket.setNoDelay(true)
  c.socket.setEncoding('latin1')
  c.socket.on('data', (chunk: string) => {
    c.buf += chunk
    const headEnd = c.buf.indexOf('\r\n\r\n')
    if (headEnd < 0) return
    const length = Number(/content-length: *(\d+)/i.exec(c.buf.slice(0, headEnd))?.[1] ?? 0)
    if (c.buf.length < headEnd + 4 + length) return
    const status = Number(c.buf.slice(9, 12))
    const body = c.buf.slice(headEnd + 4, headEnd + 4 + length)
    c.buf = ''
    c.busy = false
    c.lastUsed = performance.now()
    answered(c.n, status, body)
    dispatch(c)
  })
  c.socket.on('error', () => undefined)
  c.socket.on('close', () => {
    if (c.busy) fail(c.n, 'connection closed before the answer')
    c.busy = false
    const i = conns.indexOf(c)
    if (i < 0) return
    const fresh = open()
    conns[i] = fresh
    dispatch(fresh)
  })
  return c
}

function dispatch(c: Conn): void {
  if (c.busy || queueHead >= queue.length || c.socket.destroyed) return
  if (performance.now() - c.lastUsed > IDLE_REOPEN_MS) {
    c.socket.destroy() // its close handler opens a fresh socket in its place and dispatches there
    return
  }
  const n = queue[queueHead++]!
  if (queueHead > 65_536) { queue.splice(0, queueHead); queueHead = 0 }
  const resend = isResend(n)
  if (resend) totals.resends++
  const delivery = resend ? n - RESEND_BACK : n
  const r = requests[delivery % requests.length]!
  c.n = n
  c.busy = true
  c.lastUsed = performance.now()
  c.socket.cork()
  c.socket.write(r.head)
  c.socket.write(`${input.idPrefix}${delivery}\r\n\r\n`, 'latin1')
  c.socket.write(r.body)
  c.socket.uncork()
}

for (let i = 0; i < input.connections; i++) conns.push(open())

function q(sorted: number[], p: number): number {
  return sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! * 10) / 10 : NaN
}

let nextWindow = start + input.windowMs
await new Promise<void>((resolve) => {
  const tick = setInterval(() => {
    const now = performance.now()
    const elapsed = now - start
    const due = Math.min(total, Math.floor((Math.min(elapsed, input.durationMs) / 1000) * input.ratePerSec))
    while (totals.sent < due) { queue.push(totals.sent++); window.sent++ }
    for (const c of conns) dispatch(c)
    if (now >= nextWindow) {
      const ms = window.httpMs.sort((a, b) => a - b)
      console.log(`window ${JSON.stringify({ atS: Math.round(elapsed / 1000), sent: window.sent, accepted: window.accepted,
        duplicates: window.duplicates, failed: window.failed, httpP50Ms: q(ms, 0.5), httpP99Ms: q(ms, 0.99) })}`)
      window = { sent: 0, accepted: 0, duplicates: 0, failed: 0, httpMs: [] }
      nextWindow += input.windowMs
    }
    if (elapsed >= input.durationMs && totals.sent >= due) { clearInterval(tick); resolve() }
  }, 2)
})
const sendSeconds = (performance.now() - start) / 1000
const deadline = Date.now() + 60_000
while (totals.answered < totals.sent && Date.now() < deadline) {
  for (const c of conns) dispatch(c)
  await new Promise((r) => setTimeout(r, 20))
}
for (const c of conns) { c.socket.removeAllListeners('close'); c.socket.destroy() }
writeFileSync(input.acceptedFile, state)
console.log(`result ${JSON.stringify({ ...totals, total, unanswered: totals.sent - totals.answered, sendSeconds, failures: Object.fromEntries(failures) })}`)
