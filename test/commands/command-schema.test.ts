import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { isPipelineError } from '../../src/core/errors.js'
import { checkCommandSchema, validateCommandPayload, type CommandFieldsSchema } from '../../src/commands/command-schema.js'

const Schema = suite('command schema')

function rejection(fn: () => unknown): Error {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  return assert.unreachable('expected a throw') as never
}

Schema('a payload with every required field of the right type passes, optional fields may be absent', () => {
  const schema = { id: 'string', count: 'number', on: 'boolean', meta: 'object', tags: 'array', note: 'string?' } as const
  const payload = { id: 'f-1', count: 2, on: true, meta: {}, tags: [], extra: 1 }
  assert.is(validateCommandPayload('feature/process', schema, payload), payload)
})

Schema('a wrong or missing field is a permanent COMMAND_PAYLOAD_INVALID naming command and field', () => {
  const err = rejection(() => validateCommandPayload('feature/process', { id: 'string', count: 'number' }, { id: 'a', count: '2' }))
  assert.ok(isPipelineError(err))
  assert.is((err as { kind?: string }).kind, 'permanent')
  assert.is((err as { code?: string }).code, 'COMMAND_PAYLOAD_INVALID')
  assert.match(err.message, /command "feature\/process": payload field "count" must be a number; got string/)
  const missing = rejection(() => validateCommandPayload('c', { id: 'string' }, {}))
  assert.match(missing.message, /field "id" must be a string; got nothing/)
  const arr = rejection(() => validateCommandPayload('c', { meta: 'object' }, { meta: [1] }))
  assert.match(arr.message, /field "meta" must be an object; got array/)
  const optional = rejection(() => validateCommandPayload('c', { n: 'number?' }, { n: null }))
  assert.match(optional.message, /field "n" must be a number \(or absent\); got null/)
})

Schema('only the payload\'s own fields count: a field named like an Object method is absent when the payload lacks it', () => {
  // (built from entries: TypeScript types an object literal's "constructor" and "toString" keys as Object's)
  const schema = Object.fromEntries([['id', 'string'], ['constructor', 'string?'], ['toString', 'string?']]) as CommandFieldsSchema
  assert.equal(validateCommandPayload('c', schema, JSON.parse('{"id":"f-1"}')), { id: 'f-1' })
  assert.match(rejection(() => validateCommandPayload('c', Object.fromEntries([['valueOf', 'number']]) as CommandFieldsSchema, {})).message, /field "valueOf" must be a number; got nothing/)
  // an inherited field is not sent: JSON.stringify writes own fields only, so the handler would never get it
  assert.match(rejection(() => validateCommandPayload('c', { id: 'string' }, Object.create({ id: 'f-1' }))).message, /field "id" must be a string; got nothing/)
})

Schema('a non-object payload fails a field schema', () => {
  assert.match(rejection(() => validateCommandPayload('c', { id: 'string' }, [1])).message, /payload must be a JSON object with fields id; got array/)
})

Schema('a schema function returns the payload it accepts, and its throw becomes COMMAND_PAYLOAD_INVALID', () => {
  const parse = (p: unknown) => {
    if (typeof p !== 'number') throw new Error('"n" must be a number')
    return { n: p }
  }
  assert.equal(validateCommandPayload('c', parse, 3), { n: 3 })
  const err = rejection(() => validateCommandPayload('c', parse, 'x'))
  assert.is((err as { code?: string }).code, 'COMMAND_PAYLOAD_INVALID')
  assert.match(err.message, /rejected by its schema: "n" must be a number/)
})

Schema('checkCommandSchema rejects unknown field types at definition time', () => {
  assert.match(rejection(() => checkCommandSchema({ id: 'int' }, 'where')).message, /where: schema field "id" must be one of string, number/)
  assert.match(rejection(() => checkCommandSchema(['id'], 'where')).message, /"schema" must be an object/)
  checkCommandSchema({ id: 'string?', n: 'array' }, 'where')
  checkCommandSchema(() => 1, 'where')
})

Schema.run()
