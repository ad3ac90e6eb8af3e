import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseSize } from '../../src/config/parse-size.js'

const Size = suite('parseSize')

Size('reads bytes and binary units in any case', () => {
  assert.is(parseSize('10MiB'), 10 * 1024 * 1024)
  assert.is(parseSize('1mb'), 1024 * 1024)
  assert.is(parseSize('512kb'), 512 * 1024)
  assert.is(parseSize('1.5 KiB'), 1536)
  assert.is(parseSize('2G'), 2 * 1024 ** 3)
  assert.is(parseSize('4096'), 4096)
  assert.is(parseSize(100), 100)
})

Size('returns undefined for anything else', () => {
  for (const text of ['', 'ten', '10 parsecs', '-1', '1e3', 'mb']) assert.is(parseSize(text), undefined, text)
  assert.is(parseSize(-5), undefined)
  assert.is(parseSize(1.5), undefined)
})

Size.run()
