import type { Redis } from 'ioredis'
import { PipelineError } from '../core/errors.js'
import { redisScript, runScript } from '../sources/redis-script.js'
import { validateCommandPayload, type CommandSchema } from './command-schema.js'

/** The part of ioredis the command log uses (a `Redis` instance fits). */
export type CommandLogClient = Pick<Redis, 'call'>

/** Name of the log field that limits a re-driven command to one worker; every other worker skips the entry. */
export const ONLY_WORKER_FIELD = 'only_worker'

/** Stream commands go to unless you name another. */
export const DEFAULT_COMMAND_STREAM = 'commands'

/**
 * Name of the dead-letter stream of a command log: `<stream>:dlq`.
 *
 * @example
 * commandDlqStream('commands') // "commands:dlq"
 */
export function commandDlqStream(stream: string): string {
  return `${stream}:dlq`
}

/**
 * Sorted set of a command log's parked retries, scored by due time: `<stream>:delayed`.
 *
 * @example
 * commandDelayedKey('commands') // "commands:delayed"
 */
export function commandDelayedKey(stream: string): string {
  return `${stream}:delayed`
}

/**
 * Redis key of a replaying worker's snapshot: `<stream>:snapshot:<worker>`.
 *
 * @example
 * commandSnapshotKey('commands', 'features') // "commands:snapshot:features"
 */
export function commandSnapshotKey(stream: string, worker: string): string {
  return `${stream}:snapshot:${worker}`
}

/**
 * Set of the names of the replaying workers on a command log, of every process: `<stream>:replaying`. The log trim
 * of any app keeps what their replays need, not only its own workers'.
 *
 * @example
 * commandReplayingKey('commands') // "commands:replaying"
 */
export function commandReplayingKey(stream: string): string {
  return `${stream}:replaying`
}

/**
 * Sorted set of the log entries a replaying worker dead-lettered (as `deadLetteredMember`), which its replay
 * skips: `<stream>:dead-lettered:<worker>`. A snapshot prunes the entries it covers.
 *
 * @example
 * commandDeadLetteredKey('commands', 'ledger') // "commands:dead-lettered:ledger"
 */
export function commandDeadLetteredKey(stream: string, worker: string): string {
  return `${stream}:dead-lettered:${worker}`
}

/**
 * A stream entry id as a member of `commandDeadLetteredKey`: both parts zero-padded to 20 digits, so the set's
 * lexicographic order (all scores are 0) is the log's order and a range of ids is a ZRANGEBYLEX.
 *
 * @example
 * deadLetteredMember('1718000000000-3') // "00000001718000000000-00000000000000000003"
 */
export function deadLetteredMember(id: string): string {
  const dash = id.indexOf('-')
  return `${id.slice(0, dash).padStart(20, '0')}-${id.slice(dash + 1).padStart(20, '0')}`
}

/** Options of `executeCommand`. */
export interface ExecuteOptions {
  /** Checked before the command is appended; a mismatch throws `COMMAND_PAYLOAD_INVALID` and appends nothing. */
  readonly schema?: CommandSchema
  /** Approximate cap on the log's length (`MAXLEN ~ N`); unset means no trimming. */
  readonly maxLen?: number
}

/**
 * Appends a command to the log (XADD with fields `command` = name and `payload` = JSON) and returns its entry
 * id. Every worker of the log sees it. Throws a permanent PipelineError `COMMAND_PAYLOAD_INVALID` when the payload
 * does not match `schema` or cannot be written as JSON, and a TypeError for an empty command name.
 *
 * @example
 * await executeCommand(redis, 'commands', 'feature/process', { id: 'f-1' }, { schema: { id: 'string' } })
 */
export async function executeCommand(
  redis: CommandLogClient, stream: string, command: string, payload?: unknown, options: ExecuteOptions = {},
): Promise<string> {
  if (typeof command !== 'string' || command === '') {
    throw new TypeError(`executeCommand: "command" must be a non-empty command name such as "feature/process"; got ${JSON.stringify(command)}`)
  }
  if (options.schema) validateCommandPayload(command, options.schema, payload)
  let json: string | undefined
  try {
    json = JSON.stringify(payload)
  } catch (err) {
    throw new PipelineError('permanent', 'COMMAND_PAYLOAD_INVALID',
      `command "${command}": payload cannot be written as JSON (${(err as Error).message}); send plain objects, arrays, strings, numbers and booleans`,
      { cause: err })
  }
  const args: (string | number)[] = [stream]
  if (options.maxLen !== undefined) {
    if (!Number.isInteger(options.maxLen) || options.maxLen < 1) {
      throw new RangeError(`executeCommand: "maxLen" must be a positive integer; got ${options.maxLen}`)
    }
    args.push('MAXLEN', '~', options.maxLen)
  }
  args.push('*', 'command', command)
  if (json !== undefined) args.push('payload', json)
  return (await redis.call('XADD', ...args)) as string
}

/** One dead-lettered command. */
export interface DeadLetter {
  readonly worker: string
  readonly command: string
  /** The payload exactly as it was on the log (JSON text), when there was one. */
  readonly payload: string | undefined
  readonly error: PipelineError
  readonly streamId: string
  readonly attempts: number
}

/**
 * Whether a replaying worker's record (`commandDeadLetteredKey`) holds entry `streamId`, i.e. the worker
 * dead-lettered it.
 *
 * @example
 * await isDeadLettered(redis, commandDeadLetteredKey('commands', 'ledger'), '1718000000000-0') // false
 */
export async function isDeadLettered(redis: CommandLogClient, deadLetteredKey: string, streamId: string): Promise<boolean> {
  return (await redis.call('ZSCORE', deadLetteredKey, deadLetteredMember(streamId))) !== null
}

// the DLQ entry and the replay's record of it in one step: a record without its entry (or the reverse) would make
// a replay skip a command the worker later handled (or run one it dead-lettered)
const WRITE_RECORDED = redisScript(`
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))`)

/**
 * Appends a dead letter to the DLQ stream: fields `worker`, `command`, `payload`, `error`, `error_code`,
 * `error_kind`, `stream_id`, `attempts`, `failed_at`. With `deadLetteredKey` (a replaying worker's
 * `commandDeadLetteredKey`) it also records the entry id there, in the same script, so the worker's replay skips it.
 *
 * @example
 * await writeDeadLetter(redis, 'commands:dlq', { worker: 'features', command: 'feature/process', payload: '{}', error, streamId: '1-0', attempts: 4 })
 */
export async function writeDeadLetter(redis: CommandLogClient, dlqStream: string, letter: DeadLetter, deadLetteredKey?: string): Promise<string> {
  const fields = [
    'worker', letter.worker,
    'command', letter.command,
    'payload', letter.payload ?? '',
    'error', letter.error.message,
    'error_code', letter.error.code,
    'error_kind', letter.error.kind,
    'stream_id', letter.streamId,
    'attempts', letter.attempts,
    'failed_at', new Date().toISOString(),
  ]
  if (deadLetteredKey === undefined) return (await redis.call('XADD', dlqStream, '*', ...fields)) as string
  return (await runScript(redis, WRITE_RECORDED, [dlqStream, deadLetteredKey], [deadLetteredMember(letter.streamId), ...fields])) as string
}
