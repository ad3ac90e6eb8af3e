import type { Redis } from 'ioredis'
import {
  commandDlqIdOf, discardCommandDeadLetter, getCommandDeadLetter, listCommandDeadLetters, retryCommandDeadLetter,
} from '../commands/command-dlq.js'
import { AdminError, guarded, queryOf, type AdminLog } from './admin-http.js'
import type { Route, RouteHandler } from './server.js'
import { sendJson } from './server.js'

/** The command log whose dead letters the admin API serves. */
export interface AdminCommandLog {
  readonly redis: Pick<Redis, 'call' | 'multi'>
  /** The command log stream (COMMANDS_STREAM); its DLQ is `<stream>:dlq`. */
  readonly stream: string
}

function idOf(raw: string | undefined): string {
  try {
    return commandDlqIdOf(raw)
  } catch (err) {
    throw new AdminError(400, 'COMMAND_DLQ_ID_INVALID', (err as Error).message.replace('(see `hookstream commands dlq list`)', '(see GET /admin/commands/dlq)'))
  }
}

const notFound = (id: string) =>
  new AdminError(404, 'COMMAND_DLQ_NOT_FOUND', `command DLQ entry ${id} does not exist (retried or discarded already?); list entries with GET /admin/commands/dlq`)

/**
 * The `/admin/commands/dlq` routes: list (newest first, `?worker=&limit=&cursor=`), show, retry (the command goes
 * back on the log for its worker only) and discard, the same as `hookstream commands dlq`.
 *
 * @example
 * createRouter(commandRoutes({ redis, stream: 'commands' }, logger))
 */
export function commandRoutes(log: AdminCommandLog, logger?: AdminLog, actor = 'admin-api'): Route[] {
  const { redis, stream } = log
  const handle = (fn: RouteHandler) => guarded(fn, logger)
  const list = handle(async (req, res) => {
    const query = queryOf(req)
    const limit = query.limit === undefined ? 50 : Number(query.limit)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new AdminError(400, 'COMMAND_DLQ_QUERY_INVALID', `"limit" must be an integer from 1 to 1000; got ${JSON.stringify(query.limit?.slice(0, 20))}`)
    }
    const page = await listCommandDeadLetters(redis, stream, {
      limit, ...(query.worker ? { worker: query.worker } : {}), ...(query.cursor ? { before: idOf(query.cursor) } : {}),
    })
    sendJson(res, 200, page)
  })
  const show = handle(async (_req, res, { id }) => {
    const letter = await getCommandDeadLetter(redis, stream, idOf(id))
    if (!letter) throw notFound(id as string)
    sendJson(res, 200, { entry: letter })
  })
  const retry = handle(async (_req, res, { id }) => {
    const done = await retryCommandDeadLetter(redis, stream, idOf(id))
    if (!done) throw notFound(id as string)
    logger?.info({ dlq_id: id, worker: done.letter.worker, command: done.letter.command, actor }, 'command DLQ entry re-queued through the admin API')
    sendJson(res, 200, { retried: done.letter, stream_id: done.streamId })
  })
  const discard = handle(async (_req, res, { id }) => {
    const letter = await discardCommandDeadLetter(redis, stream, idOf(id))
    if (!letter) throw notFound(id as string)
    logger?.info({ dlq_id: id, worker: letter.worker, command: letter.command, actor }, 'command DLQ entry discarded through the admin API')
    sendJson(res, 200, { discarded: letter })
  })
  return [
    { method: 'GET', path: '/admin/commands/dlq', handler: list },
    { method: 'GET', path: '/admin/commands/dlq/:id', handler: show },
    { method: 'POST', path: '/admin/commands/dlq/:id/retry', handler: retry },
    { method: 'POST', path: '/admin/commands/dlq/:id/discard', handler: discard },
  ]
}
