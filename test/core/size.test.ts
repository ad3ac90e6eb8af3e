import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { formatSize, parseSize } from '../../src/core/size.js'

const Size = suite('parseSize and formatSize')

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

Size('formatSize writes the largest unit that divides the count, and parseSize reads it back', () => {
  for (const [bytes, text] of [[10 * 1024 * 1024, '10MiB'], [1536, '1536'], [2048, '2KiB'], [3 * 1024 ** 3, '3GiB'], [0, '0']] as const) {
    assert.is(formatSize(bytes), text)
    assert.is(parseSize(formatSize(bytes)), bytes)
  }
})

Size.run()
