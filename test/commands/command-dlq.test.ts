import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { discardCommandDeadLetter, retryCommandDeadLetter } from '../../src/commands/command-dlq.js'
import { commandDlqStream } from '../../src/commands/command-log.js'
import { sharedRedis } from '../helpers/servers.js'

const Redrive = suite<{ redis: Redis }>('command dead letters: re-drive and discard', {} as { redis: Redis })
Redrive.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Redrive.after(async (ctx) => { ctx.redis.disconnect() })

async function deadLetter(redis: Redis, stream: string): Promise<string> {
  return (await redis.xadd(commandDlqStream(stream), '*', 'worker', 'billing', 'command', 'charge', 'payload', '{"n":1}',
    'error', 'boom', 'error_code', 'HANDLER_FAILED', 'error_kind', 'transient', 'stream_id', '1-0', 'attempts', '3',
    'failed_at', new Date().toISOString())) as string
}

Redrive('two re-drives of one command dead letter at once append the command to the log once', async ({ redis }) => {
  const stream = `cmd-dlq-${randomUUID()}`
  const id = await deadLetter(redis, stream)
  const results = await Promise.all([retryCommandDeadLetter(redis, stream, id), retryCommandDeadLetter(redis, stream, id)])
  assert.is(results.filter((r) => r !== undefined).length, 1, 'one caller re-drove it, the other found it gone')
  assert.is(Number(await redis.xlen(stream)), 1, 'the command is on the log once')
  assert.is(Number(await redis.xlen(commandDlqStream(stream))), 0)
})

Redrive('a command dead letter discarded while a re-drive reads it is not appended to the log', async ({ redis }) => {
  const stream = `cmd-dlq-${randomUUID()}`
  const id = await deadLetter(redis, stream)
  const [discarded, retried] = await Promise.all([discardCommandDeadLetter(redis, stream, id), retryCommandDeadLetter(redis, stream, id)])
  assert.is([retried, discarded].filter((r) => r !== undefined).length, 1, 'either the re-drive or the discard won')
  assert.is(Number(await redis.xlen(stream)), retried === undefined ? 0 : 1, 'a discarded command is not re-driven')
})

Redrive.run()
