import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseFlags } from '../../src/config/parse-flags.js'

const Flags = suite('parseFlags')

Flags('reads --name value, --name=value, bare flags and positionals', () => {
  assert.equal(parseFlags(['run', '--config', 'h.yaml', '--log-level=debug', 'extra', '--dry-run']), {
    flags: { config: 'h.yaml', 'log-level': 'debug', 'dry-run': true }, positionals: ['run', 'extra'],
  })
})

Flags('a flag followed by another flag is true; declared booleans never take the next argument', () => {
  assert.equal(parseFlags(['--verbose', '--consumer', 'c1']).flags, { verbose: true, consumer: 'c1' })
  assert.equal(parseFlags(['--json', 'tools'], { booleans: ['json'] }), { flags: { json: true }, positionals: ['tools'] })
})

Flags('"--" ends the flags, "=" values may be empty or hold "=", the last repeat wins', () => {
  assert.equal(parseFlags(['--a=', '--b=x=y', '--c', '1', '--c', '2', '--', '--not-a-flag']), {
    flags: { a: '', b: 'x=y', c: '2' }, positionals: ['--not-a-flag'],
  })
})

Flags.run()
