import { PipelineError } from '../core/errors.js'

/** A field type a command schema can ask for. */
export type CommandFieldType = 'string' | 'number' | 'boolean' | 'object' | 'array'

/** One field of a command schema: a type, optional when it ends in `?` (`'number?'`). */
export type CommandFieldSpec = CommandFieldType | `${CommandFieldType}?`

/** A command payload described field by field: `{ id: 'string', count: 'number?' }`. */
export type CommandFieldsSchema = Readonly<Record<string, CommandFieldSpec>>

/**
 * What a command's payload must look like: a field map (checked by hookstream), or your own function that returns
 * the typed payload and throws when it is wrong (a zod schema's `parse` fits: `schema: MySchema.parse`).
 */
export type CommandSchema<T = unknown> = CommandFieldsSchema | ((payload: unknown) => T)

type TypeOf<T extends string> =
  T extends 'string' ? string : T extends 'number' ? number : T extends 'boolean' ? boolean :
    T extends 'array' ? unknown[] : Record<string, unknown>
type Required<S> = { [K in keyof S as S[K] extends `${string}?` ? never : K]: S[K] extends string ? TypeOf<S[K]> : never }
type Optional<S> = { [K in keyof S as S[K] extends `${string}?` ? K : never]?: S[K] extends `${infer T}?` ? TypeOf<T> : never }

/** The payload type a schema accepts: the function's return type, or the field map turned into an object type. */
export type PayloadOf<S> =
  S extends (payload: unknown) => infer T ? T :
    S extends CommandFieldsSchema ? Required<S> & Optional<S> & Record<string, unknown> : unknown

const FIELD_SPEC = /^(string|number|boolean|object|array)\??$/

/**
 * Checks a schema when a worker is defined, so a typo fails at startup instead of on the first command.
 * Throws a TypeError naming `where` and the field.
 *
 * @example
 * checkCommandSchema({ id: 'string', count: 'int' }, 'worker "features", command "feature/process"') // throws
 */
export function checkCommandSchema(schema: unknown, where: string): void {
  if (typeof schema === 'function') return
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new TypeError(`${where}: "schema" must be an object of field → type or a function (payload) => payload; got ${typeof schema}`)
  }
  for (const [field, spec] of Object.entries(schema)) {
    if (typeof spec !== 'string' || !FIELD_SPEC.test(spec)) {
      throw new TypeError(`${where}: schema field "${field}" must be one of string, number, boolean, object, array ` +
        `(with "?" for optional); got ${JSON.stringify(spec)}`)
    }
  }
}

function kindOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  return typeof value
}

/**
 * Checks `payload` against `schema` and returns it (or what the schema function returned). Throws a permanent
 * PipelineError `COMMAND_PAYLOAD_INVALID` naming the command and the first bad field; a schema function's own
 * error is kept as `cause` and its message is included.
 *
 * @example
 * validateCommandPayload('feature/process', { id: 'string' }, { id: 7 })
 * // throws: command "feature/process": payload field "id" must be a string; got number
 */
export function validateCommandPayload<S extends CommandSchema>(command: string, schema: S, payload: unknown): PayloadOf<S> {
  if (typeof schema === 'function') {
    try {
      return schema(payload) as PayloadOf<S>
    } catch (err) {
      throw new PipelineError('permanent', 'COMMAND_PAYLOAD_INVALID',
        `command "${command}": payload rejected by its schema: ${(err as Error)?.message ?? String(err)}; ` +
        'send a payload the schema accepts', { cause: err })
    }
  }
  if (kindOf(payload) !== 'object') {
    throw new PipelineError('permanent', 'COMMAND_PAYLOAD_INVALID',
      `command "${command}": payload must be a JSON object with fields ${Object.keys(schema).join(', ') || '(none)'}; got ${kindOf(payload)}`)
  }
  const record = payload as Record<string, unknown>
  for (const [field, spec] of Object.entries(schema as CommandFieldsSchema)) {
    const optional = spec.endsWith('?')
    const type = optional ? spec.slice(0, -1) : spec
    // own fields only: an inherited one (Object's "constructor", or a prototype's) is not in the JSON that is sent
    const value = Object.hasOwn(record, field) ? record[field] : undefined
    if (value === undefined && optional) continue
    const actual = kindOf(value)
    if (actual !== type) {
      const expected = `${type === 'array' || type === 'object' ? 'an' : 'a'} ${type}`
      throw new PipelineError('permanent', 'COMMAND_PAYLOAD_INVALID',
        `command "${command}": payload field "${field}" must be ${expected}${optional ? ' (or absent)' : ''}; ` +
        `got ${value === undefined ? 'nothing' : actual}`)
    }
  }
  return payload as PayloadOf<S>
}
