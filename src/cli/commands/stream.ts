import { DlqStore } from '../../db/dlq-store.js'
import { PartitionedStreamClient, StreamPartitions } from '../../sources/partitions.js'
import { StreamClient } from '../../sources/stream-client.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { formatFields, print, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream stream info [--json]'

/**
 * `hookstream stream info`: the main stream (length, first/last id, per group pending, lag, last-delivered id
 * and consumers with pending and idle time), the delayed-retry set, the DLQ stream's length and DLQ rows by status.
 * With STREAM_PARTITIONS > 1 the figures are totals over all partitions, followed by one row per partition.
 *
 * @example
 * hookstream stream info --json
 */
export const streamCommand: Command = async (args, flags, io) => {
  if (args[0] !== 'info' || args.length > 1) {
    io.stderr(`hookstream stream: ${args[0] ? `unknown subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  return withContext('stream', flags, io, async (ctx) => {
    const { keys, scale } = ctx.config
    const partitions = new StreamPartitions({ redis: ctx.redis, keys, count: scale.partitions, key: scale.partitionKey })
    const main = partitions.count > 1 ? new PartitionedStreamClient(partitions) : new StreamClient({ redis: ctx.redis, stream: keys.stream })
    const [info, dlqLength, delayedCounts, dlqRows, perPartition] = await Promise.all([
      main.info(),
      ctx.redis.xlen(keys.dlqStream),
      Promise.all(partitions.keys.map((k) => ctx.redis.zcard(k.delayed))),
      new DlqStore({ db: ctx.db.db, stream: main }).countByStatus(),
      partitions.count > 1 ? Promise.all(partitions.streams.map((s) => s.info())) : Promise.resolve([]),
    ])
    const delayed = delayedCounts.reduce((a, b) => a + b, 0)
    const group = (i: (typeof perPartition)[number]) => i.groups.find((g) => g.name === keys.group)
    const partitionRows = perPartition.map((p, i) => ({
      partition: i, stream: p.stream, length: p.length, pending: group(p)?.pending ?? 0, lag: group(p)?.lag ?? 'unknown',
      consumers: group(p)?.consumers.length ?? 0, delayed_retries: delayedCounts[i] ?? 0,
    }))
    const report = { ...info, delayed_retries: delayed, dlq_stream: { stream: keys.dlqStream, length: dlqLength }, dlq_rows: dlqRows,
      ...(partitions.count > 1 ? { partitions: partitionRows } : {}) }
    print(io, flags, report, () => {
      const groups = info.groups.map((g) => ({ group: g.name, pending: g.pending, lag: g.lag ?? 'unknown', last_delivered: g.lastDeliveredId, consumers: g.consumers.length }))
      const consumers = info.groups.flatMap((g) => g.consumers.map((c) => ({ group: g.name, consumer: c.name, pending: c.pending, idle: `${Math.round(c.idleMs / 1000)}s` })))
      return [
        formatFields({ stream: info.stream, length: info.length, first_id: info.firstId ?? '(empty)', last_id: info.lastId ?? '(empty)', delayed_retries: delayed }),
        '', 'groups:', formatTable(groups),
        '', 'consumers:', formatTable(consumers),
        '', formatFields({ dlq_stream: keys.dlqStream, dlq_stream_length: dlqLength }),
        '', 'DLQ rows by status:', formatTable([dlqRows]),
        ...(partitionRows.length > 0 ? ['', 'partitions:', formatTable(partitionRows)] : []),
      ].join('\n')
    })
    return 0
  })
}

/** `hookstream stream` as registered in the CLI. */
export const streamSpec: CommandSpec = {
  summary: 'stream info: length, pending, lag, consumers, delayed retries, DLQ depth',
  usage: USAGE,
  flags: JSON_FLAG,
  run: streamCommand,
}
