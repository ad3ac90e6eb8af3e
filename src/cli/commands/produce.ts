import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { completeStreamEvent, type StreamEventInput } from '../../core/event.js'
import { createProducer } from '../../sources/create-producer.js'
import { JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { openContext } from '../context.js'

/**
 * `hookstream produce --file events.ndjson`: enqueues one StreamEvent per line through `createProducer`, so
 * it writes what ingest writes and dedupes as it does: a line whose (tool, id) was sent within the dedupe
 * window (WORKER_IDEMPOTENCY_TTL), by ingest or a producer, is skipped and counted as a duplicate. Missing
 * `id`, `timestamp`, `retry_count`, `repository` and `tenant_id` are filled in (UUID, now, 0, "", "default");
 * a line that is not a valid event stops the command before anything of its chunk is enqueued, naming the
 * line and field.
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
    const producer = createProducer({
      redis: ctx.redis, keys: ctx.config.keys, partitions: ctx.config.scale.partitions, partitionKey: ctx.config.scale.partitionKey,
      ...(ctx.config.streamMaxLen ? { maxLen: ctx.config.streamMaxLen } : {}),
      dedupeTtlSeconds: Math.max(1, Math.round(ctx.config.worker.idempotencyTtlMs / 1000)),
    })
    let chunk: StreamEventInput[] = []
    let total = 0
    let duplicates = 0
    let lineNo = 0
    const flush = async () => {
      if (chunk.length === 0) return
      // sendMany keeps the file's order on the stream
      const skipped = (await producer.sendMany(chunk)).filter((r) => r.duplicate).length
      duplicates += skipped
      total += chunk.length - skipped
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
        // checked here to name the line; the producer completes the line as written, so only a given id is deduped
        completeStreamEvent(parsed, `${file} line ${lineNo}`)
        chunk.push(parsed as unknown as StreamEventInput)
      } catch (err) {
        io.stderr(`hookstream produce: ${(err as Error).message}; ${total} events were enqueued before it`)
        return 1
      }
      if (chunk.length >= 1000) await flush()
    }
    await flush()
    io.progress?.('')
    const stream = ctx.config.keys.stream
    io.stdout(flags.json ? JSON.stringify({ enqueued: total, duplicates, stream })
      : `enqueued ${total} events on ${stream}${duplicates > 0 ? `; ${duplicates} duplicate${duplicates === 1 ? '' : 's'} skipped (sent within the dedupe window)` : ''}`)
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
