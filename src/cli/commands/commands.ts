import { DEFAULT_COMMAND_STREAM } from '../../commands/command-log.js'
import {
  commandDlqIdOf, discardCommandDeadLetter, getCommandDeadLetter, listCommandDeadLetters, retryCommandDeadLetter,
} from '../../commands/command-dlq.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { CommandFailure, formatFields, print, stringFlag, UsageError, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream commands dlq list [--worker name] [--limit n] [--cursor id]\n' +
  '       hookstream commands dlq show <id> | retry <id> | discard <id>\n' +
  '       (--stream <command log>, default "commands"; --json for JSON output)'

function idOf(raw: string | undefined): string {
  try {
    return commandDlqIdOf(raw)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

const missing = (id: string) => new CommandFailure(`command DLQ entry ${id} does not exist; list entries with \`hookstream commands dlq list\``)

/**
 * `hookstream commands dlq list|show|retry|discard`: the dead-lettered commands of a command log (`<stream>:dlq`).
 * `retry` appends the command to the log again for the worker that failed it only, and removes the DLQ entry;
 * `discard` removes it for good.
 *
 * @example
 * hookstream commands dlq list --worker features
 * hookstream commands dlq retry 1718000000000-0 --stream commands
 */
export const commandsCommand: Command = async (args, flags, io) => {
  const [area, sub, id, ...extra] = args
  if (area !== 'dlq' || !sub || !['list', 'show', 'retry', 'discard'].includes(sub) || extra.length > 0 || (sub === 'list') !== (id === undefined)) {
    io.stderr(`hookstream commands: ${area ? `unknown or malformed subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  return withContext('commands', flags, io, async (ctx) => {
    const stream = stringFlag(flags, 'stream') ?? DEFAULT_COMMAND_STREAM
    switch (sub) {
      case 'list': {
        const limitRaw = stringFlag(flags, 'limit')
        const worker = stringFlag(flags, 'worker')
        const cursor = stringFlag(flags, 'cursor')
        const limit = limitRaw === undefined ? 50 : Number(limitRaw)
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit must be an integer from 1 to 1000; got "${limitRaw}"`)
        const page = await listCommandDeadLetters(ctx.redis, stream, {
          limit, ...(worker ? { worker } : {}), ...(cursor ? { before: idOf(cursor) } : {}),
        })
        print(io, flags, page, () => {
          const table = formatTable(page.entries.map((e) => ({
            id: e.id, worker: e.worker, command: e.command, code: e.error_code, attempts: e.attempts, failed_at: e.failed_at,
          })))
          return page.next_cursor ? `${table}\nmore: hookstream commands dlq list --cursor ${page.next_cursor}` : table
        })
        return 0
      }
      case 'show': {
        const letter = await getCommandDeadLetter(ctx.redis, stream, idOf(id))
        if (!letter) throw missing(id as string)
        print(io, flags, letter, () => formatFields({ ...letter }))
        return 0
      }
      case 'retry': {
        const done = await retryCommandDeadLetter(ctx.redis, stream, idOf(id))
        if (!done) throw missing(id as string)
        print(io, flags, { retried: done.letter, stream_id: done.streamId },
          () => `command "${done.letter.command}" re-queued for worker "${done.letter.worker}" as log entry ${done.streamId}`)
        return 0
      }
      default: {
        const letter = await discardCommandDeadLetter(ctx.redis, stream, idOf(id))
        if (!letter) throw missing(id as string)
        print(io, flags, { discarded: letter }, () => `command DLQ entry ${letter.id} ("${letter.command}", worker "${letter.worker}") discarded`)
        return 0
      }
    }
  })
}

/** `hookstream commands` as registered in the CLI. */
export const commandsSpec: CommandSpec = {
  summary: 'dead-lettered commands of a command log: list, show, retry, discard',
  usage: USAGE,
  flags: {
    ...JSON_FLAG,
    stream: { type: 'string', description: 'the command log (default "commands"); its DLQ is <stream>:dlq' },
    worker: { type: 'string', description: 'list: only the entries of this worker' },
    limit: { type: 'string', description: 'list: entries per page (default 50)' },
    cursor: { type: 'string', description: 'list: the next_cursor of the previous page' },
  },
  run: commandsCommand,
}
