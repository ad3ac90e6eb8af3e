import { DlqStore } from '../../db/dlq-store.js'
import { StreamClient } from '../../sources/stream-client.js'
import { formatTable, type Command } from '../command.js'
import { formatFields, print, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream stream info [--json]'

/**
 * `hookstream stream info`: the main stream (length, first/last id, per group pending, lag, last-delivered id
 * and consumers with pending and idle time), the delayed-retry set, the DLQ stream's length and DLQ rows by status.
 *
 * @example
 * hookstream stream info --json
 */
export const streamCommand: Command = async (args, flags, io) => {
  if (args[0] !== 'info' || args.length > 1) {
    io.stderr(`hookstream stream: ${args[0] ? `unknown subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 1
  }
  return withContext('stream', flags, io, async (ctx) => {
    const { keys } = ctx.config
    const main = new StreamClient({ redis: ctx.redis, stream: keys.stream })
    const [info, dlqLength, delayed, dlqRows] = await Promise.all([
      main.info(),
      ctx.redis.xlen(keys.dlqStream),
      ctx.redis.zcard(keys.delayed),
      new DlqStore({ db: ctx.db.db, stream: main }).countByStatus(),
    ])
    const report = { ...info, delayed_retries: delayed, dlq_stream: { stream: keys.dlqStream, length: dlqLength }, dlq_rows: dlqRows }
    print(io, flags, report, () => {
      const groups = info.groups.map((g) => ({ group: g.name, pending: g.pending, lag: g.lag ?? 'unknown', last_delivered: g.lastDeliveredId, consumers: g.consumers.length }))
      const consumers = info.groups.flatMap((g) => g.consumers.map((c) => ({ group: g.name, consumer: c.name, pending: c.pending, idle: `${Math.round(c.idleMs / 1000)}s` })))
      return [
        formatFields({ stream: info.stream, length: info.length, first_id: info.firstId ?? '(empty)', last_id: info.lastId ?? '(empty)', delayed_retries: delayed }),
        '', 'groups:', formatTable(groups),
        '', 'consumers:', formatTable(consumers),
        '', formatFields({ dlq_stream: keys.dlqStream, dlq_stream_length: dlqLength }),
        '', 'DLQ rows by status:', formatTable([dlqRows]),
      ].join('\n')
    })
    return 0
  })
}
