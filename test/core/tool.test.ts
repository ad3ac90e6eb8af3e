import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { MAX_TRANSFORM_CHARS, MAX_TRANSFORM_FIELDS, parseTool } from '../../src/core/tool.js'

const Tool = suite('parseTool')

const transforming = (transform: unknown) => parseTool({ id: 'tx', provider: 'github', secret: 's', processing_mode: 'transform_and_store', transform })

Tool('a transform of more rules or characters than every process can compile on each reload is refused naming the field', () => {
  // 40,000 small rules fit in an admin request's 1 MiB and took ~1.3 s of main-thread compiling per tool-list reload
  const many = Object.fromEntries(Array.from({ length: MAX_TRANSFORM_FIELDS + 1 }, (_, i) => [`f${i}`, 'a']))
  assert.throws(() => transforming(many), /tool "tx": field "transform" must hold at most 500 fields and 65536 characters of field names and JSONata in all; got 501 and/)
  assert.throws(() => transforming(`"${'x'.repeat(MAX_TRANSFORM_CHARS)}"`), /field "transform" must hold at most 500 fields and 65536 characters .*; got 1 and 65538$/)
  const most = Object.fromEntries(Array.from({ length: MAX_TRANSFORM_FIELDS }, (_, i) => [`f${i}`, 'repository.full_name']))
  assert.is(Object.keys(transforming(most).transform as object).length, MAX_TRANSFORM_FIELDS)
})

Tool.run()
