import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { eventually } from '../helpers/events.js'
import { sharedRedis } from '../helpers/servers.js'
import { startIngest } from './providers/ingest-harness.js'

// Codes of the README's ingest error table that only show when something goes wrong mid-request.
const Codes = suite('ingest answers REQUEST_ABORTED and INGEST_FAILED as documented')

Codes('a client that closes the connection mid-body is recorded as 400 REQUEST_ABORTED and nothing is queued', async () => {
  const h = await startIngest((await sharedRedis()).url)
  try {
    h.addTool({ id: 'gh', provider: 'github', secret: 's3cret' })
    const url = new URL(h.url)
    const sock = connect(Number(url.port), url.hostname)
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    sock.write('POST /webhooks/gh HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nx-github-event: push\r\n' +
      `x-github-delivery: ${randomUUID()}\r\nx-hub-signature-256: sha256=${'0'.repeat(64)}\r\ncontent-length: 1000\r\n\r\n{"ref":`)
    await new Promise((r) => setTimeout(r, 50))
    sock.destroy()
    await eventually('the abort is observed', () => h.observed.length === 1)
    assert.equal([h.observed[0]!.status, h.observed[0]!.code], [400, 'REQUEST_ABORTED'])
    assert.is(await h.length(), 0)
  } finally {
    await h.close()
  }
})

Codes('an unexpected error while queuing answers 503 INGEST_FAILED with Retry-After, without its message', async () => {
  // a tool whose provider this build does not know (say, written by a newer version into the shared store):
  // nothing ingest anticipates, so it is the unexpected path
  const alien = { ...parseTool({ id: 'gh', provider: 'github', secret: 's3cret' }), provider: 'from-the-future' } as unknown as ToolConfig
  const h = await startIngest((await sharedRedis()).url, { tools: { get: async () => alien } })
  try {
    const body = JSON.stringify({ ref: 'refs/heads/main' })
    const res = await h.post('gh', body, {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', 's3cret').update(body).digest('hex')}`,
    })
    assert.is(res.status, 503)
    assert.is(res.json.error.code, 'INGEST_FAILED')
    assert.ok(Number(res.headers.get('retry-after')) > 0)
    assert.not.match(JSON.stringify(res.json), 'from-the-future', 'internal details do not leak to the sender')
    assert.is(await h.length(), 0)
  } finally {
    await h.close()
  }
})

Codes.run()
