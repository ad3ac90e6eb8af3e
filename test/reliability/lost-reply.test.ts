import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { eventually, makeEvent } from '../helpers/events.js'
import { pipelineWorld } from '../helpers/pipeline.js'
import { startRedisProxy, type RedisProxy } from '../helpers/redis-proxy.js'

/**
 * A TCP proxy in front of Redis that cuts the connection carrying the first reply containing `marker`
 * (Redis executed the command, the client never sees the answer), as when Redis or the network fails mid-reply.
 */
async function replyDroppingProxy(redisPort: number, marker: string): Promise<RedisProxy & { dropped: () => boolean }> {
  let dropped = false
  const proxy = await startRedisProxy(redisPort, (chunk, connection) => {
    if (dropped || !chunk.includes(marker)) return true
    dropped = true
    connection.cut()
    return false
  })
  return { ...proxy, dropped: () => dropped }
}

const Lost = suite('an XREADGROUP reply lost with the connection')

// after a reconnect the source re-reads its own pending list, so the entries of the lost reply are handed
// out then, not after claimIdleMs (60 s by default)
Lost('the entries of the lost reply are re-read from the consumer\'s pending list after the reconnect, not after claimIdleMs', async () => {
  const redisUrl = (await sharedRedis()).url
  const event = makeEvent({ tool_id: 'store-tool' })
  const proxy = await replyDroppingProxy(Number(new URL(redisUrl).port), event.id)
  const w = await pipelineWorld(proxy.url, await (await sharedPostgres()).createDatabase())
  try {
    w.addTool({ id: 'store-tool', provider: 'github' })
    w.start({ claimIdleMs: 60_000 })
    await new Promise((r) => setTimeout(r, 300))
    await w.stream.add(event)
    await eventually('the reply was dropped', () => proxy.dropped(), 5000)
    const stored = await eventually('stored', async () => (await w.rowCount()) === 1, 5000).then(() => true, () => false)
    assert.ok(stored, `stored within 5 s of the lost reply (pending: ${await w.pending()})`)
  } finally {
    await w.close()
    await proxy.close()
  }
})

Lost.run()
