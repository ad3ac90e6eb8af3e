import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseTool } from '../../src/core/tool.js'
import { withSigningSecrets } from '../../src/core/tool-write-only.js'

const Signing = suite('withSigningSecrets')

const WHSEC = /^whsec_[A-Za-z0-9+/]{43}=$/

Signing('each new destination without a secret gets its own whsec_ secret, and the forward URL its forward secret', () => {
  const tool = parseTool({ id: 'gh', provider: 'github', secret: 'inbound', processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.test/in',
    destinations: [{ id: 'a', url: 'https://a.example.test/in' }, { id: 'b', url: 'https://b.example.test/in' },
      { id: 'given', url: 'https://c.example.test/in', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }] })
  const { tool: signed, generated, destinationSecrets } = withSigningSecrets(tool)
  assert.match(generated!, WHSEC)
  assert.is(signed.forwardSecret, generated)
  assert.equal(Object.keys(destinationSecrets!), ['a', 'b'])
  assert.equal(signed.destinations!.map((d) => d.secret), [destinationSecrets!.a, destinationSecrets!.b, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'])
  const keys = [generated, destinationSecrets!.a, destinationSecrets!.b]
  assert.ok(keys.every((k) => WHSEC.test(k!)))
  assert.is(new Set([...keys, tool.secret]).size, 4, 'no destination shares a key with another or with the inbound secret')
})

Signing('a stored destination keeps what it has, and a tool with every secret set comes back unchanged', () => {
  const existing = parseTool({ id: 'gh', provider: 'github', secret: 'inbound', destinations: [{ id: 'old', url: 'https://o.example.test/in' }] })
  const next = parseTool({ id: 'gh', provider: 'github', secret: 'inbound',
    destinations: [{ id: 'old', url: 'https://o.example.test/in' }, { id: 'new', url: 'https://n.example.test/in' }] })
  const { tool, destinationSecrets } = withSigningSecrets(next, existing)
  assert.equal(Object.keys(destinationSecrets!), ['new'])
  assert.equal(tool.destinations!.map((d) => [d.id, d.secret === undefined]), [['old', true], ['new', false]])
  const complete = parseTool({ id: 'gh', provider: 'github', secret: 'inbound', processing_mode: 'store_and_forward', forward_url: 'https://f.example.test/in',
    forward_secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' })
  const same = withSigningSecrets(complete)
  assert.is(same.tool, complete)
  assert.equal([same.generated, same.destinationSecrets], [undefined, undefined])
})

Signing.run()
