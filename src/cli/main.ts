#!/usr/bin/env node
import { processIO } from './command.js'
import { enableInstrumentations, parseInstrumentations } from '../observability/instrumentation.js'
import { runCli } from './run-cli.js'

let code: number
try {
  // before pg and ioredis load (command-registry imports them), so their instrumentation can patch them
  await enableInstrumentations(parseInstrumentations(process.env.OTEL_NODE_ENABLED_INSTRUMENTATIONS))
  const { COMMANDS } = await import('./command-registry.js')
  code = await runCli(process.argv.slice(2), processIO, COMMANDS)
} catch (err) {
  if ((err as Error)?.name !== 'ConfigError') throw err
  processIO.stderr(`hookstream: ${(err as Error).message}`)
  code = 1
}
process.exitCode = code
// connections closed by the command let the process end; do not wait for stray timers
setTimeout(() => process.exit(code), 200).unref()
