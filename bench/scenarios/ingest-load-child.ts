/**
 * Child process of the ingest scenarios: autocannon (programmatic API) against the server under test, in its
 * own process so the load generator never shares the server's event loop. Each request takes the next signed
 * body and a new X-GitHub-Delivery id. Prints `progress <n>` and one `result <json>` line.
 *
 * `seconds` is measured here, from starting autocannon to the last response: autocannon's own `duration` of an
 * `amount` run ends on its next one-second tick, so a 5.1 s run reported 6.02 s and a 1.1 s one 2.01 s.
 */
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'

interface Input {
  url: string
  path: string
  bodiesFile: string
  amount: number
  connections: number
  idPrefix: string
}
const input = JSON.parse(process.argv[2] ?? '{}') as Input
const bodies = JSON.parse(readFileSync(input.bodiesFile, 'utf8')) as { event: string; body: string; signature: string }[]
let next = 0
let finish!: (r: autocannon.Result) => void
let fail!: (err: Error) => void
const done = new Promise<autocannon.Result>((resolve, reject) => { finish = resolve; fail = reject })
const started = performance.now()
let lastResponseAt = started
const instance = autocannon({
  url: input.url,
  connections: input.connections,
  amount: input.amount,
  pipelining: 1,
  timeout: 10,
  requests: [{
    method: 'POST',
    path: input.path,
    setupRequest: (req) => {
      const b = bodies[next % bodies.length] as (typeof bodies)[number]
      next++
      return {
        ...req,
        body: b.body,
        headers: {
          'content-type': 'application/json',
          'x-github-event': b.event,
          'x-github-delivery': `${input.idPrefix}${next}`,
          'x-hub-signature-256': b.signature,
        },
      }
    },
  }],
}, (err, result) => (err ? fail(err as Error) : finish(result)))
let responses = 0
instance.on('response', () => {
  lastResponseAt = performance.now()
  if (++responses % 1000 === 0) console.log(`progress ${responses}`)
})
const r = await done
console.log(`result ${JSON.stringify({
  total: r.requests.total, seconds: (lastResponseAt - started) / 1000, p50Ms: r.latency.p50, p99Ms: r.latency.p99,
  non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts,
})}`)
