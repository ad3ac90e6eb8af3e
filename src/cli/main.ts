#!/usr/bin/env node
import { isPipelineError } from '../core/errors.js'
import { parseFlags } from '../config/parse-flags.js'
import { processIO, type Command } from './command.js'
import { commandsCommand } from './commands/commands.js'
import { dlqCommand } from './commands/dlq.js'
import { eventsCommand } from './commands/events.js'
import { migrateCommand } from './commands/migrate.js'
import { produceCommand } from './commands/produce.js'
import { runCommand } from './commands/run.js'
import { streamCommand } from './commands/stream.js'
import { toolsCommand } from './commands/tools.js'

const COMMANDS: Readonly<Record<string, Command>> = {
  run: runCommand,
  migrate: migrateCommand,
  produce: produceCommand,
  tools: toolsCommand,
  dlq: dlqCommand,
  stream: streamCommand,
  events: eventsCommand,
  commands: commandsCommand,
}

const USAGE = `usage: hookstream <command> [flags]

commands:
  run [--role all|ingest|worker|dlq]   start the service (ingest, worker, DLQ worker, health)
  run --role commands --app <module>   run a command app's workers with health and metrics
  migrate                              apply database migrations
  produce --file events.ndjson         enqueue StreamEvents, one JSON per line
  tools list|show|add|remove           manage tools (secrets are write-only)
  dlq list|show|retry|discard|purge    inspect and re-drive dead letters
  stream info                          length, pending, lag, consumers, DLQ depth
  events show <event id>               where one event is and what happened to it
  commands dlq list|show|retry|discard dead-lettered commands of a command log (--stream, default commands)
  (every inspecting command takes --json)

common flags: --config <file.yaml> --redis-url <url> --database-url <url> --log-level <level>
configuration: see README.md ("Configuration")`

async function main(argv: readonly string[]): Promise<number> {
  const { flags, positionals } = parseFlags(argv, { booleans: ['json', 'all', 'disabled', 'help'] })
  const [name, ...args] = positionals
  if (!name || name === 'help' || flags.help) {
    processIO.stdout(USAGE)
    return name || flags.help ? 0 : 2
  }
  const command = COMMANDS[name]
  if (!command) {
    processIO.stderr(`hookstream: unknown command "${name}"\n\n${USAGE}`)
    return 2
  }
  try {
    return await command(args, flags, processIO)
  } catch (err) {
    const e = err as Error & { key?: string; code?: string }
    // configuration and pipeline errors carry a message written for the user; anything else is a bug
    const known = e?.name === 'ConfigError' || isPipelineError(err)
    processIO.stderr(`hookstream ${name}: ${known ? e.message : e?.stack ?? String(err)}`)
    return 1
  }
}

const code = await main(process.argv.slice(2))
process.exitCode = code
// connections closed by the command let the process end; do not wait for stray timers
setTimeout(() => process.exit(code), 200).unref()
