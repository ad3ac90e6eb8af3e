/**
 * What ingest's own steps cost per request on the GitHub example bodies, each timed apart in a tight loop
 * (µs per call, after a warm-up): the body's decode and parse, the HMAC, the SHA-256 of the "same delivery id,
 * different body" check, the storable-JSON scan, and building the stream entry. The rest of a request is node:http
 * and the Redis round trip (`npm run bench -- --scenario bare-http,ingest` and `npx tsx bench/profile.ts ingest`).
 *
 *   npx tsx bench/ingest-costs.ts
 */
import { createHash, createHmac, randomUUID } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import { githubExamples } from './payloads.js'
import { unstorableJson } from '../src/http/storable-json.js'
import { validateStreamEvent } from '../src/core/event.js'
import { entryFields } from '../src/core/stream-entry.js'
const bodies = githubExamples().map((e) => Buffer.from(JSON.stringify(e.payload)))
console.log('avg body bytes', Math.round(bodies.reduce((a, b) => a + b.length, 0) / bodies.length))
function time(name: string, f: (b: Buffer, i: number) => unknown) {
  for (let w = 0; w < 2000; w++) f(bodies[w % bodies.length]!, w)
  const n = 20000; const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) f(bodies[i % bodies.length]!, i)
  console.log(name.padEnd(28), (Number(process.hrtime.bigint() - t0) / 1000 / n).toFixed(2), 'µs')
}
time('toString utf8', (b) => b.toString('utf8'))
time('isUtf8', (b) => isUtf8(b))
time('JSON.parse(toString)', (b) => JSON.parse(b.toString('utf8')))
time('hmac sha256', (b) => createHmac('sha256', 'bench-secret').update(b).digest())
time('sha256 createHash', (b) => createHash('sha256').update(b).digest())
time('sha1 createHash', (b) => createHash('sha1').update(b).digest())
time('unstorableJson', (b) => unstorableJson(b, 512))
const headers = { host: '127.0.0.1:1234', 'user-agent': 'GitHub-Hookshot/abc', 'content-type': 'application/json', 'content-length': '7000', 'x-github-event': 'push', 'x-github-delivery': 'abc', 'x-github-hook-id': '1', 'x-hub-signature-256': 'sha256=00', 'x-hub-signature': 'sha1=00', connection: 'keep-alive' }
time('validate+entryFields', (b, i) => {
  const e = validateStreamEvent({ id: randomUUID(), event_type: 'webhook.github.push', repository: 'a/b', tenant_id: 't', tool_id: 'x', payload: {}, auth_context: { provider: 'github', verified: true }, metadata: { headers }, timestamp: new Date().toISOString(), retry_count: 0 }, 'x')
  return entryFields(e, b)
})
time('randomUUID', () => randomUUID())
time('new Date().toISOString', () => new Date().toISOString())
