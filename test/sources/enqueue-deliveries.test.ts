import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { enqueueDeliveries } from '../../src/sources/enqueue-deliveries.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { sharedRedis } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const Enqueue = suite<{ redis: Redis; keys: StreamKeys }>('enqueueDeliveries', {} as { redis: Redis; keys: StreamKeys })
Enqueue.before.each(async (ctx) => {
  ctx.redis = new Redis((await sharedRedis()).url)
  ctx.keys = streamKeys({ prefix: `t-${randomUUID()}:` })
})
Enqueue.after.each((ctx) => release(ctx, { redis: (r) => r.disconnect() }))

Enqueue('one entry per destination with the event fields, at most once per event; once: false enqueues again (a replay)', async ({ redis, keys }) => {
  const fields = { event: '{"id":"e1"}', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', attempts: '3', first_attempt_at: '1' }
  const events = [{ toolId: 'gh', eventId: 'e1', fields, destinationIds: ['ci', 'billing'] }, { toolId: 'gh', eventId: 'e2', fields, destinationIds: [] }]
  assert.is(await enqueueDeliveries({ redis, keys }, events), 2)
  assert.is(await enqueueDeliveries({ redis, keys }, events), 0, 'a redelivered event enqueues nothing again')
  const entries = (await redis.xrange(keys.deliveryStream, '-', '+')).map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i], f[2 * i + 1]])))
  assert.equal(entries.map((e) => e.destination), ['ci', 'billing'])
  assert.equal(entries[0], { event: fields.event, traceparent: fields.traceparent, destination: 'ci' }, 'a parked retry\'s bookkeeping is not copied')
  assert.is(await enqueueDeliveries({ redis, keys, once: false }, [{ ...events[0]!, destinationIds: ['billing'] }]), 1)
  assert.is(await redis.xlen(keys.deliveryStream), 3)
})

Enqueue.run()
