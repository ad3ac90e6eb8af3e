import { isPipelineError } from '../../core/errors.js'
import { ToolRegistry } from '../../db/tool-registry.js'
import { ToolStore } from '../../db/tool-store.js'
import { deliveryReplaySender, parseReplayRequest, startReplay, type ReplayRequest } from '../../pipelines/replay.js'
import { StreamPartitions } from '../../sources/partitions.js'
import type { Command, FlagSpecs } from '../command.js'
import { CommandFailure, formatFields, print, stringFlag, UsageError, withContext } from './command-helpers.js'

/** The usage line of `hookstream events replay`. */
export const EVENTS_REPLAY_USAGE = 'hookstream events replay [--tool id] [--tenant t] [--type glob] [--repository r] [--status s] ' +
  '[--delivery-id id] [--from iso] [--to iso] [--destination id] [--dry-run] [--yes] [--json]'

/** The flags only `hookstream events replay` has (it shares the filters of `events list`). */
export const EVENTS_REPLAY_FLAGS: FlagSpecs = {
  destination: { type: 'string', description: 'replay: only this destination of each event\'s tool' },
  'dry-run': { type: 'boolean', description: 'replay: count the matching events, send nothing' },
  yes: { type: 'boolean', description: `replay: confirm a replay of more than REPLAY_CONFIRM_OVER events` },
}

// flag → the API's parameter, so both go through one parser with the same checks and codes
const PARAMETER_OF_FLAG: Readonly<Record<string, string>> = {
  tool: 'tool', tenant: 'tenant', type: 'event_type', repository: 'repository', status: 'status',
  'delivery-id': 'delivery_id', from: 'from', to: 'to', destination: 'destination',
}

function requestOf(flags: Parameters<Command>[1]): { given: Record<string, string>; request: ReplayRequest } {
  for (const list of ['limit', 'cursor']) {
    if (flags[list] !== undefined) throw new UsageError(`--${list} belongs to "events list"; a replay sends every matching event`)
  }
  const given: Record<string, string> = {}
  for (const [flag, name] of Object.entries(PARAMETER_OF_FLAG)) {
    const value = stringFlag(flags, flag)
    if (value !== undefined) given[name] = value
  }
  if (flags['dry-run'] === true) given.dry_run = 'true'
  if (flags.yes === true) given.confirm = 'true'
  try {
    return { given, request: parseReplayRequest(given) }
  } catch (err) {
    // a bad filter is a wrong command line: exit 2 with the API's code, nothing sent
    if (isPipelineError(err)) throw new UsageError(`${err.code}: ${err.message}`)
    throw err
  }
}

/**
 * `hookstream events replay`: `POST /admin/replays` from the command line. Sends the stored events a filter
 * matches to their destinations again (or to `--destination`), through the delivery pipeline of the running
 * workers, audited as `cli`; `--dry-run` prints the count, more than REPLAY_CONFIRM_OVER events need `--yes`.
 * Progress goes to stderr page by page; the replay's record is printed at the end.
 *
 * @example
 * hookstream events replay --tool gh-main --from 2026-11-27T00:00:00Z --status failed --dry-run
 */
export const eventsReplayCommand: Command = async (args, flags, io) => {
  if (args.length > 0) {
    io.stderr(`hookstream events: replay takes no arguments; got "${args.join(' ')}"\nusage: ${EVENTS_REPLAY_USAGE}`)
    return 2
  }
  return withContext('events', flags, io, async (ctx) => {
    const { given, request } = requestOf(flags)
    const store = new ToolStore({ db: ctx.db.db, ...(ctx.config.encryptionKey ? { encryptionKey: ctx.config.encryptionKey } : {}),
      ...(ctx.config.encryptionKeyPrevious ? { encryptionKeyPrevious: ctx.config.encryptionKeyPrevious } : {}) })
    const tools = new ToolRegistry({ tools: ctx.config.tools, store })
    const partitions = new StreamPartitions({ redis: ctx.redis, keys: ctx.config.keys, count: ctx.config.scale.partitions, key: ctx.config.scale.partitionKey })
    try {
      const start = await startReplay({
        db: ctx.db.db, redis: ctx.redis, request, given, actor: 'cli',
        send: deliveryReplaySender({ redis: ctx.redis, tools, keysOf: (event) => partitions.route(event).keys }),
        limits: { maxEvents: ctx.config.admin.replayMaxEvents, confirmOver: ctx.config.admin.replayConfirmOver },
        staticForwardingTools: ctx.config.tools.filter((t) => t.processingMode === 'store_and_forward').map((t) => t.id),
        onProgress: (r) => { if (!flags.json) io.stderr(`replay ${r.id}: sent ${r.sent}, skipped ${r.skipped} of ${r.matched}`) },
      })
      if (start.dryRun) {
        print(io, flags, { dry_run: true, matched: start.matched, capped: start.capped, needs_confirm: start.needsConfirm }, () =>
          `${start.capped ? 'more than ' : ''}${start.matched} events match${start.needsConfirm ? `; replaying them needs --yes` : ''}`)
        return 0
      }
      const record = await start.finished
      print(io, flags, record, () => formatFields({ ...record, filter: JSON.stringify(record.filter) }))
      if (record.status === 'failed') throw new CommandFailure(`replay ${record.id} stopped after ${record.sent} events: ${record.error}`)
      return 0
    } finally {
      await tools.close()
    }
  })
}
