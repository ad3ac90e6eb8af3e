import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ForwardSink } from '../../src/sinks/forward.js'
import { makeEvent } from '../helpers/events.js'

const Codes = suite('ForwardSink: retryable answers as the README lists them')

/** A receiver answering every request with `status` and `headers`. */
async function answering(status: number, headers: Record<string, string> = {}) {
  let requests = 0
  const server = createServer((req, res) => { requests++; req.resume(); req.on('end', () => res.writeHead(status, headers).end()) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

Codes('425 Too Early is retried after its Retry-After, like 429', async () => {
  for (const status of [425, 429]) {
    const rx = await answering(status, { 'retry-after': '7' })
    const sink = new ForwardSink({ allowPrivate: true })
    try {
      const event = makeEvent()
      const failures = await sink.write([{ event, tool: { id: event.tool_id, secret: 's', forwardUrl: rx.url } }])
      const failure = failures.get(0) ?? [...failures.values()][0]
      assert.ok(failure, `${status} is a failure`)
      assert.equal([failure!.kind, failure!.code, failure!.retryAfterMs], ['transient', 'DESTINATION_429', 7000], `answer ${status}`)
      assert.is(rx.requests(), 1)
    } finally {
      await sink.close()
      await rx.close()
    }
  }
})

Codes('408 and 5xx are retried, other 4xx and 3xx are dead-lettered', async () => {
  const cases: [number, string, string][] = [[408, 'transient', 'DESTINATION_TIMEOUT'], [503, 'transient', 'DESTINATION_5XX'],
    [404, 'permanent', 'DESTINATION_4XX'], [301, 'permanent', 'DESTINATION_REDIRECT']]
  for (const [status, kind, code] of cases) {
    const rx = await answering(status, status === 301 ? { location: 'http://127.0.0.1:1/elsewhere' } : {})
    const sink = new ForwardSink({ allowPrivate: true })
    try {
      const event = makeEvent()
      const failures = await sink.write([{ event, tool: { id: event.tool_id, secret: 's', forwardUrl: rx.url } }])
      const failure = [...failures.values()][0]
      assert.equal([failure?.kind, failure?.code], [kind, code], `answer ${status}`)
    } finally {
      await sink.close()
      await rx.close()
    }
  }
})

Codes.run()
