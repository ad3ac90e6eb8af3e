import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, createHmac, randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/observability/logger.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { parseExposition } from '../observability/exposition.js'
import { sharedRedis } from '../helpers/servers.js'
import { startIngest } from './providers/ingest-harness.js'

const Duplicates = suite('ingest: a re-sent delivery id')

const sign = (body: string) => `sha256=${createHmac('sha256', 'gh-secret').update(body).digest('hex')}`
// the first 48 bits of the body's SHA-256, base64url: what ingest keeps per delivery
const sha = (body: string) => createHash('sha256').update(body).digest().subarray(0, 6).toString('base64url')

Duplicates('is 202 duplicate whatever its body; a different body is counted apart and logged at warn with both hashes, never the body', async () => {
  const metrics = createMetrics({ defaultMetrics: false })
  const lines: string[] = []
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done() } })
  const h = await startIngest((await sharedRedis()).url, { metrics, logger: createLogger({ level: 'info', destination }) })
  try {
    h.addTool({ id: 'gh-dup', provider: 'github', secret: 'gh-secret' })
    h.addTool({ id: 'gh-other', provider: 'github', secret: 'gh-secret' })
    const delivery = randomUUID()
    const first = '{"ref":"refs/heads/main","secret_marker":"first-body"}'
    const replay = '{"ref":"refs/heads/evil","secret_marker":"other-body"}'
    const send = (tool: string, body: string) => h.post(tool, body, {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery, 'x-hub-signature-256': sign(body),
    })
    const before = await h.length()
    const answers = [await send('gh-dup', first), await send('gh-dup', first), await send('gh-dup', replay), await send('gh-dup', replay)]
    assert.equal(answers.map((a) => [a.status, a.json.duplicate ?? false]), [[202, false], [202, true], [202, true], [202, true]])
    // the same delivery id through another tool is another event
    assert.equal([(await send('gh-other', first)).json.duplicate], [undefined])
    assert.is(await h.length(), before + 2)
    const s = parseExposition(await metrics.metricsText())
    assert.is(s.get('webhook_ingest_duplicates_total{tool_id="gh-dup",body="same"}'), 1)
    assert.is(s.get('webhook_ingest_duplicates_total{tool_id="gh-dup",body="different"}'), 2)
    assert.is(s.get('webhook_ingest_duplicates_total{tool_id="gh-other",body="same"}'), undefined)
    const warns = lines.map((l) => JSON.parse(l)).filter((l) => /different body/.test(l.msg))
    assert.is(warns.length, 2)
    assert.equal([warns[0].tool_id, warns[0].event_id, warns[0].first_body_hash, warns[0].body_hash], ['gh-dup', delivery, sha(first), sha(replay)])
    assert.not.match(lines.join('\n'), /first-body|other-body/)
  } finally {
    await h.close()
  }
})

Duplicates.run()
