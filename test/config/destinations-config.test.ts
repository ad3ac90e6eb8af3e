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
    forward_secret: \${FWD_SECRET}
    destinations:
      - id: ci
        url: https://ci.example.com/in
        event_types: [webhook.github.push, "webhook.github.pull_request*"]
        filter: 'ref = "refs/heads/main"'
        headers: { authorization: "Bearer \${CI_TOKEN}" }
        rate_limit: { per_second: 5, burst: 2 }
`, { CI_TOKEN: 'ci-token', FWD_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' })
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

const KEY = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'

function refusal(yaml: string, env: Record<string, string> = {}): Error {
  try {
    load(yaml, env)
  } catch (err) {
    return err as Error
  }
  throw new Error('the config loaded; it should have been refused')
}

test('a config-file tool with forward_url and no forward_secret is refused, naming the tool, the destination, why and how to fix it', () => {
  const err = refusal('tools:\n  - { id: billing, provider: github, secret: inbound-value, processing_mode: store_and_forward, forward_url: "https://b.example.com/in" }\n')
  assert.is(err.name, 'ConfigError')
  assert.match(err.message, /tools\[0\]/)
  assert.match(err.message, /tool "billing"/)
  assert.match(err.message, /"default"/)
  assert.match(err.message, /forge/)
  assert.match(err.message, /forward_secret: \$\{[A-Z_]+\}/)
  assert.match(err.message, /whsec_/)
  assert.match(err.message, /hookstream secrets generate/)
  assert.not.match(err.message, /inbound-value/)
})

test('a destination without a secret on a tool without forward_secret is refused, naming every such destination and no other', () => {
  const err = refusal(`tools:
  - id: fan
    provider: github
    secret: inbound-value
    destinations: [{ id: own, url: "https://o.example.com/in", secret: "${KEY}" }, { id: bare, url: "https://b.example.com/in" }, { id: bare2, url: "https://c.example.com/in" }]
`)
  assert.match(err.message, /tool "fan"/)
  assert.match(err.message, /"bare", "bare2"/)
  assert.not.match(err.message, /"own"/)
})

test('a forward_secret or destination secret equal to the tool\'s inbound secret is refused, saying so, without the secret', () => {
  const same = refusal('tools:\n  - { id: gh, provider: github, secret: "${S}", processing_mode: store_and_forward, forward_url: "https://b.example.com/in", forward_secret: "${S}" }\n', { S: KEY })
  assert.is(same.name, 'ConfigError')
  assert.match(same.message, /tool "gh"/)
  assert.match(same.message, /forward_secret/)
  assert.match(same.message, /inbound secret/)
  assert.not.match(same.message, /MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/)
  const dest = refusal(`tools:\n  - { id: gh, provider: github, secret: "${KEY}", destinations: [{ id: ci, url: "https://ci.example.com/in", secret: "${KEY}" }] }\n`)
  assert.match(dest.message, /destination "ci"/)
  assert.match(dest.message, /inbound secret/)
})

test('a forwarding tool loads with a forward_secret of its own, or with a secret on every destination', () => {
  const config = load(`tools:
  - { id: a, provider: github, secret: inbound-value, processing_mode: store_and_forward, forward_url: "https://a.example.com/in", forward_secret: "\${FWD}",
      destinations: [{ id: ci, url: "https://ci.example.com/in" }] }
  - { id: b, provider: github, secret: inbound-value, destinations: [{ id: x, url: "https://x.example.com/in", secret: "${KEY}" }] }
  - { id: c, provider: github, secret: inbound-value, forward_url: "https://c.example.com/in" }
`, { FWD: KEY })
  assert.equal(config.tools.map((t) => [t.id, destinationsOf(t).length]), [['a', 2], ['b', 1], ['c', 0]])
  assert.is(config.tools[0]!.forwardSecret, KEY)
})

test.run()
