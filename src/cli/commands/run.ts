import type { Command, CommandSpec } from '../command.js'
import { startCommandService } from '../command-service.js'
import { openContext } from '../context.js'
import { ROLES, startService, type Role } from '../../service/start-service.js'

/**
 * `hookstream run [--role all|ingest|worker|dlq|commands] [--app module] [--config file] [flags]`: starts the service and runs until
 * SIGTERM or SIGINT, then drains (no new requests or reads, in-flight events finish and are acked, within
 * WORKER_SHUTDOWN_TIMEOUT), closes every connection and exits 0.
 *
 * @example
 * hookstream run --config hookstream.yaml --role worker
 */
export const runCommand: Command = async (_args, flags, io) => {
  const role = (flags.role === undefined ? 'all' : String(flags.role)) as Role
  if (role as string === 'commands') return runCommandApp(flags, io)
  if (!(ROLES as readonly string[]).includes(role)) {
    io.stderr(`hookstream run: --role must be one of ${ROLES.join(', ')}, commands; got "${role}"`)
    return 2
  }
  const ctx = await openContext(flags, io)
  let service
  try {
    service = await startService(ctx, { role })
  } catch (err) {
    await ctx.close()
    throw err
  }
  io.stderr(`hookstream: running (role ${role})${service.ingestUrl ? `; webhooks at ${service.ingestUrl}/webhooks/<tool id>` : ''}${service.adminUrl ? `; admin API at ${service.adminUrl}/admin` : ''}; health at ${service.healthUrl}/health`)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  io.stderr(`hookstream: ${signal} received; draining`)
  const { drained } = await service.close()
  await ctx.close()
  if (!drained) io.stderr('hookstream: shutdown timeout reached; unfinished events stay pending and are redelivered')
  return 0
}

/**
 * `hookstream run --role commands --app ./my-app.js`: runs a command app's workers (see `startCommandService`)
 * until SIGTERM or SIGINT, then stops them gracefully and exits 0.
 *
 * @example
 * hookstream run --role commands --app ./dist/my-app.js
 */
async function runCommandApp(flags: Parameters<Command>[1], io: Parameters<Command>[2]): Promise<number> {
  if (typeof flags.app !== 'string' || flags.app === '') {
    io.stderr('hookstream run: --role commands needs --app <module>, a module whose default export is your defineWorker() workers')
    return 2
  }
  const ctx = await openContext(flags, io)
  let service
  try {
    service = await startCommandService(ctx, { appPath: flags.app })
  } catch (err) {
    await ctx.close()
    throw err
  }
  io.stderr(`hookstream: running (role commands, ${service.app.info().length} workers on ${service.app.stream}); health at ${service.healthUrl}/health`)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  io.stderr(`hookstream: ${signal} received; stopping the workers`)
  await service.close()
  await ctx.close()
  return 0
}

/** `hookstream run` as registered in the CLI. */
export const runSpec: CommandSpec = {
  summary: 'start the service (ingest, worker, DLQ worker, health and metrics) until SIGTERM',
  usage: 'usage: hookstream run [--role all|ingest|worker|dlq] [--config hookstream.yaml]\n' +
    '       hookstream run --role commands --app <module>   (a command app\'s workers, with health and metrics)',
  flags: {
    role: { type: 'string', description: `which parts run: ${ROLES.join(', ')}, or commands (default all)` },
    app: { type: 'string', description: 'with --role commands: the module whose default export is your defineWorker() workers' },
  },
  run: runCommand,
}
