import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { destinationsOf } from '../../src/core/tool.js'
import { loadConfig } from '../../src/config/load-config.js'

function load(yaml: string, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-dest-config-'))
  try {
    const file = join(dir, 'hookstream.yaml')
    writeFileSync(file, yaml)
    return loadConfig({ env, file })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('YAML destinations load with their filters, secrets from the environment, and forward_url as "default"', () => {
  const config = load(`tools:
  - id: gh
    provider: github
    secret: s
    processing_mode: store_and_forward
    forward_url: https://fwd.example.com/in
    destinations:
      - id: ci
        url: https://ci.example.com/in
        event_types: [webhook.github.push, "webhook.github.pull_request*"]
        filter: 'ref = "refs/heads/main"'
        headers: { authorization: "Bearer \${CI_TOKEN}" }
        rate_limit: { per_second: 5, burst: 2 }
`, { CI_TOKEN: 'ci-token' })
  const tool = config.tools[0]!
  assert.equal(destinationsOf(tool).map((d) => d.id), ['default', 'ci'])
  const ci = tool.destinations![0]!
  assert.equal([ci.headers, ci.rateLimit, ci.eventTypes.length], [{ authorization: 'Bearer ci-token' }, { perSecond: 5, burst: 2 }, 2])
})

test('a bad destination in YAML fails startup naming the file, the tool entry, the destination and the field', () => {
  for (const [destination, field] of [
    ['{ id: ci, url: "https://ci.example.com", filter: "ref = " }', /destination "ci": field "filter" does not compile as JSONata/],
    ['{ id: ci, url: "mailto:x@example.com" }', /field "url" must be an http\(s\) URL/],
    ['{ id: default, url: "https://x.example.com" }', /field "destinations\[0\]\.id" must not be "default"/],
    ['{ id: ci, url: "https://x.example.com", timeout: 10m }', /field "timeout" must be between 100ms and 1m/],
  ] as const) {
    try {
      load(`tools:\n  - { id: gh, provider: github, secret: s, destinations: [${destination}] }\n`)
      assert.unreachable(`${destination} should be refused`)
    } catch (err) {
      assert.match((err as Error).message, /hookstream\.yaml: tools\[0\]/)
      assert.match((err as Error).message, field)
    }
  }
})

test.run()
