#!/usr/bin/env node
import { processIO } from './command.js'
import { COMMANDS } from './command-registry.js'
import { runCli } from './run-cli.js'

const code = await runCli(process.argv.slice(2), processIO, COMMANDS)
process.exitCode = code
// connections closed by the command let the process end; do not wait for stray timers
setTimeout(() => process.exit(code), 200).unref()
