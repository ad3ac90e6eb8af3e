import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseDestination } from '../../src/core/destination.js'
import { parseTool } from '../../src/core/tool.js'

const Secrets = suite('tool secrets')

Secrets('a rotation end given as a number of seconds is refused naming the field, not taken as a time in 1970', () => {
  const seconds = Math.floor(Date.parse('2030-01-01T00:00:00Z') / 1000)
  const rotating = (end: unknown) => parseTool({ id: 'rot', provider: 'github', secret: 'tok-new', previous_secret: 'tok-old', previous_secret_expires_at: end })
  assert.throws(() => rotating(seconds), (err: Error) =>
    /tool "rot".*"previous_secret_expires_at" is milliseconds since 1970 when a number; got 1893456000, which looks like seconds/.test(err.message) &&
    !err.message.includes('tok-'))
  assert.is(rotating(seconds * 1000).previousSecretExpiresAt, seconds * 1000)
  assert.is(rotating('2030-01-01T00:00:00Z').previousSecretExpiresAt, seconds * 1000)
  // a destination's rotation end too
  assert.throws(() => parseDestination({ id: 'ops', url: 'https://ops.example/hook', secret: `whsec_${Buffer.alloc(24, 1).toString('base64')}`, previous_secret: `whsec_${Buffer.alloc(24, 2).toString('base64')}`, previous_secret_expires_at: seconds }),
    /"previous_secret_expires_at" is milliseconds since 1970 when a number; got 1893456000, which looks like seconds/)
})

Secrets.run()
