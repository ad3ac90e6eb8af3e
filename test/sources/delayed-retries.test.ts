import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { parkEntry, startDelayedRetries } from '../../src/sources/delayed-retries.js'
import { streamKeys } from '../../src/sources/keys.js'
import { eventually } from '../helpers/events.js'
import { startRedis } from '../helpers/servers.js'
import { within } from '../helpers/time-limit.js'

const Delayed = suite('startDelayedRetries')

Delayed('close() while Redis is down returns at once; the parked retries stay for the next scheduler', async () => {
  const server = await startRedis({ appendonly: true })
  // as the service's client: commands wait for a reconnect instead of failing
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  redis.on('error', () => {})
  const keys = streamKeys({ prefix: 'dr-down:' })
  const errors: Error[] = []
  try {
    await parkEntry(redis, keys.delayed, { stream: keys.stream, from: '1-0', fields: { event: '{}' } }, Date.now() + 60_000)
    const delayed = startDelayedRetries({ redis, keys, intervalMs: 20, onError: (err) => errors.push(err) })
    await server.stop() // a clean shutdown: the AOF has the parked retry
    await eventually('the client saw the connection go', () => redis.status !== 'ready')
    await new Promise((r) => setTimeout(r, 200)) // several intervals while Redis is down
    assert.is(await within(delayed.close(), 5000), undefined, 'close() returned while Redis was down')
    await server.start()
    await eventually('reconnected', () => redis.status === 'ready')
    assert.is(Number(await redis.zcard(keys.delayed)), 1, 'the parked retry is still there')
  } finally {
    redis.disconnect()
    await server.stop()
  }
})

Delayed.run()
