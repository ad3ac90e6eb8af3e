import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { PROVIDERS, parseTool } from '../../../src/core/tool.js'
import { PROVIDER_ADAPTERS } from '../../../src/http/providers/provider-adapters.js'
import { safeEqual } from '../../../src/http/providers/provider.js'

const Adapters = suite('provider adapters')

Adapters('every provider a tool can name has an adapter that names itself and accepts JSON', () => {
  assert.equal(Object.keys(PROVIDER_ADAPTERS).sort(), [...PROVIDERS].sort())
  for (const provider of PROVIDERS) {
    assert.is(PROVIDER_ADAPTERS[provider].provider, provider)
    assert.ok(PROVIDER_ADAPTERS[provider].contentTypes.includes('application/json'))
  }
})

Adapters('an empty body never verifies against an empty secret', () => {
  const open = parseTool({ id: 'g', provider: 'generic', signature: 'none' })
  const unsigned = { ...open, signature: undefined }
  assert.equal(PROVIDER_ADAPTERS.generic.verify({ headers: { 'x-signature': '' }, rawBody: Buffer.alloc(0) }, unsigned), { ok: false })
})

Adapters('safeEqual compares texts of any lengths', () => {
  assert.ok(safeEqual('abc', 'abc'))
  assert.not.ok(safeEqual('abc', 'abd'))
  assert.not.ok(safeEqual('abc', 'abcd'))
  assert.not.ok(safeEqual('', 'a'))
})

Adapters.run()
