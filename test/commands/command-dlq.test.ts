import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { discardCommandDeadLetter, listCommandDeadLetters, retryCommandDeadLetter } from '../../src/commands/command-dlq.js'
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

Redrive('a worker filter reads at most 10000 dead letters per page, and its cursor goes on where it stopped', async ({ redis }) => {
  const stream = `cmd-dlq-${randomUUID()}`
  const dlq = commandDlqStream(stream)
  const audit = (await redis.xadd(dlq, '*', 'worker', 'audit', 'command', 'count', 'stream_id', '1-0')) as string
  for (let done = 0; done < 10_050; done += 1000) {
    const pipe = redis.pipeline()
    for (let i = 0; i < 1000; i++) pipe.xadd(dlq, '*', 'worker', 'billing', 'command', 'charge', 'stream_id', '1-0')
    await pipe.exec()
  }
  // a filter that matches little must not read the whole DLQ in one request
  const first = await listCommandDeadLetters(redis, stream, { worker: 'audit', limit: 5 })
  assert.equal(first.entries, [])
  assert.ok(first.next_cursor, 'a cursor to go on with')
  let page = first
  const found: string[] = []
  for (let pages = 0; page.next_cursor !== null && pages < 5; pages++) {
    page = await listCommandDeadLetters(redis, stream, { worker: 'audit', limit: 5, before: page.next_cursor })
    found.push(...page.entries.map((e) => e.id))
  }
  assert.equal(found, [audit])
  assert.is(page.next_cursor, null)
  await redis.del(dlq)
})

Redrive.run()
