import type { CommandSpec } from './command.js'
import { breakersSpec } from './commands/breakers.js'
import { configSpec } from './commands/config.js'
import { dlqSpec } from './commands/dlq.js'
import { eventsSpec } from './commands/events.js'
import { migrateSpec } from './commands/migrate.js'
import { produceSpec } from './commands/produce.js'
import { runSpec } from './commands/run.js'
import { streamSpec } from './commands/stream.js'
import { toolsSpec } from './commands/tools.js'
import { destinationsSpec } from './commands/destinations.js'
import { commandsSpec } from './commands/commands.js'
import { secretsSpec } from './commands/secrets.js'

/** Every `hookstream <name>` command; each declares the flags it accepts (CommandSpec.flags). */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  run: runSpec,
  migrate: migrateSpec,
  config: configSpec,
  produce: produceSpec,
  tools: toolsSpec,
  destinations: destinationsSpec,
  dlq: dlqSpec,
  stream: streamSpec,
  events: eventsSpec,
  commands: commandsSpec,
  breakers: breakersSpec,
  secrets: secretsSpec,
}
