import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { completeStreamEvent, type StreamEvent } from '../../core/event.js'
import { mainStreamClient } from '../../sources/partitions.js'
import { JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { openContext } from '../context.js'

/**
 * `hookstream produce --file events.ndjson`: enqueues one StreamEvent per line. Missing `id`, `timestamp`,
 * `retry_count`, `repository` and `tenant_id` are filled in (UUID, now, 0, "", "default"); a line that is
 * not a valid event stops the command before anything of its chunk is enqueued, naming the line and field.
 *
 * @example
 * hookstream produce --file events.ndjson
 */
export const produceCommand: Command = async (_args, flags, io) => {
  const file = flags.file
  if (typeof file !== 'string') {
    io.stderr('hookstream produce: --file <events.ndjson> is required (one StreamEvent JSON per line)')
    return 2
  }
  const input = createReadStream(file)
  // a missing or unreadable file is the user's to fix: say so, instead of the stack trace of an unknown error
  const unreadable = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    input.once('open', () => resolve(undefined))
    input.once('error', resolve)
  })
  if (unreadable) {
    io.stderr(`hookstream produce: --file ${file} cannot be read (${unreadable.code ?? unreadable.message}); check the path`)
    return 1
  }
  let ctx: Awaited<ReturnType<typeof openContext>>
  try {
    ctx = await openContext(flags, io)
  } catch (err) {
    input.destroy()
    throw err
  }
  try {
    const client = mainStreamClient({ redis: ctx.redis, keys: ctx.config.keys, count: ctx.config.scale.partitions, key: ctx.config.scale.partitionKey })
    let chunk: StreamEvent[] = []
    let total = 0
    let lineNo = 0
    const flush = async () => {
      if (chunk.length === 0) return
      await client.addMany(chunk, ctx.config.streamMaxLen ? { maxLen: ctx.config.streamMaxLen } : {})
      total += chunk.length
      chunk = []
      io.progress?.(`enqueued ${total} events (line ${lineNo})`)
    }
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      lineNo += 1
      if (line.trim() === '') continue
      let parsed: Record<string, unknown>
      try {
        parsed = JSON.parse(line) as Record<string, unknown>
      } catch (err) {
        io.stderr(`hookstream produce: ${file} line ${lineNo} is not JSON (${(err as Error).message}); ${total} events were enqueued before it`)
        return 1
      }
      try {
        chunk.push(completeStreamEvent(parsed, `${file} line ${lineNo}`))
      } catch (err) {
        io.stderr(`hookstream produce: ${(err as Error).message}; ${total} events were enqueued before it`)
        return 1
      }
      if (chunk.length >= 1000) await flush()
    }
    await flush()
    io.progress?.('')
    const stream = ctx.config.keys.stream
    io.stdout(flags.json ? JSON.stringify({ enqueued: total, stream }) : `enqueued ${total} events on ${stream}`)
    return 0
  } finally {
    input.destroy()
    await ctx.close()
  }
}

/** `hookstream produce` as registered in the CLI. */
export const produceSpec: CommandSpec = {
  summary: 'enqueue StreamEvents from a file, one JSON per line (progress on a terminal, then the count)',
  usage: 'usage: hookstream produce --file events.ndjson [--json]',
  flags: { ...JSON_FLAG, file: { type: 'string', description: 'the NDJSON file of StreamEvents' } },
  run: produceCommand,
}
