import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { decodeEntry } from '../../src/core/stream-entry.js'
import { StreamClient, type RedisClient } from '../../src/sources/stream-client.js'
import { sharedRedis } from '../helpers/servers.js'
import { entryRecord, makeEvent } from '../helpers/events.js'
import { release } from '../helpers/release.js'

const Client = suite<{ redis: Redis }>('StreamClient', {} as { redis: Redis })
Client.before(async (ctx) => { ctx.redis = new Redis((await sharedRedis()).url) })
Client.after((ctx) => release(ctx, { redis: (r) => r.quit() }))

Client('add writes the header as separate fields, the payload as JSON in field "payload", and an optional traceparent', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  const event = makeEvent({ auth_context: { provider: 'github', verified: true } })
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const id = await s.add(event, { traceparent: tp })
  const [[gotId, fields]] = (await redis.xrange(s.stream, '-', '+')) as [[string, string[]]]
  assert.is(gotId, id)
  assert.equal(fields, ['id', event.id, 'tool_id', event.tool_id, 'event_type', event.event_type, 'tenant_id', event.tenant_id,
    'repository', event.repository, 'timestamp', event.timestamp, 'retry_count', '0',
    'auth_context', '{"provider":"github","verified":true}', 'payload', JSON.stringify(event.payload), 'traceparent', tp])
  assert.equal({ ...decodeEntry(entryRecord(fields)) }, event)
})

Client('add with payloadJson writes the payload text as received instead of serializing it again', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  const text = '{ "n": 12345678901234567890, "s": "caf\u00e9 ✓" }'
  const event = makeEvent({ payload: JSON.parse(text) })
  for (const payloadJson of [Buffer.from(text), text]) {
    await s.add(event, { payloadJson })
  }
  const entries = (await redis.xrange(s.stream, '-', '+')) as [string, string[]][]
  assert.is(entries.length, 2)
  for (const [, fields] of entries) {
    assert.is(entryRecord(fields).payload, text)
    // the whole entry decodes back to the event
    assert.equal(JSON.parse(JSON.stringify(decodeEntry(entryRecord(fields)))), JSON.parse(JSON.stringify(event)))
  }
})

Client('add rejects an event that is not a StreamEvent and names the field', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  try {
    await s.add({ ...makeEvent(), tool_id: '' })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /event field "tool_id" must be a non-empty string/)
  }
  assert.is(await redis.xlen(s.stream), 0)
})

Client('addMany pipelines many events in order and trims approximately with maxLen', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  const events = Array.from({ length: 500 }, () => makeEvent())
  const ids = await s.addMany(events)
  assert.is(ids.length, 500)
  const all = (await redis.xrange(s.stream, '-', '+')) as [string, string[]][]
  assert.equal(all.map(([id]) => id), ids)
  assert.equal(all.map(([, f]) => entryRecord(f).id), events.map((e) => e.id))
  await s.addMany(Array.from({ length: 2000 }, () => makeEvent()), { maxLen: 100 })
  const len = await redis.xlen(s.stream)
  assert.ok(len < 500, `approximate MAXLEN kept ${len} entries`)
})

Client('ensureGroup creates the stream and group once; an existing group is fine', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  assert.is(await s.ensureGroup('g'), true)
  assert.is(await s.ensureGroup('g'), false)
  const info = await s.info()
  assert.equal(info.groups.map((g) => g.name), ['g'])
})

Client('ack acks many ids in one call; info reports length, ids, pending, lag and consumers', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  await s.ensureGroup('g')
  const ids = await s.addMany(Array.from({ length: 10 }, () => makeEvent()))
  await redis.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 6, 'STREAMS', s.stream, '>')
  assert.is(await s.ack('g', ids.slice(0, 4)), 4)
  const info = await s.info()
  assert.is(info.length, 10)
  assert.is(info.firstId, ids[0])
  assert.is(info.lastId, ids[9])
  const g = info.groups[0]!
  assert.is(g.pending, 2)
  assert.is(g.lag, 4)
  assert.is(g.lastDeliveredId, ids[5])
  assert.equal(g.consumers.map((c) => [c.name, c.pending]), [['c1', 2]])
})

Client('info of a missing stream reads as empty', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  assert.equal(await s.info(), { stream: s.stream, length: 0, firstId: null, lastId: null, groups: [] })
})

Client('trimSafe removes only entries every group is done with, unlike plain MAXLEN', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  await s.ensureGroup('g')
  const ids = await s.addMany(Array.from({ length: 10 }, () => makeEvent()))
  await redis.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 6, 'STREAMS', s.stream, '>')
  await s.ack('g', ids.slice(0, 3)) // 1–3 done, 4–6 pending, 7–10 unread
  assert.is(await s.trimSafe(), 3)
  assert.equal(((await redis.xrange(s.stream, '-', '+')) as [string, string[]][]).map(([id]) => id), ids.slice(3))
  // a second group that has read nothing holds everything that is left
  await s.ensureGroup('late', '0')
  await s.ack('g', ids.slice(3, 6))
  assert.is(await s.trimSafe(), 0)
  assert.is(await redis.xlen(s.stream), 7)
})

Client('trimSafe with keep never trims below the newest N entries', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  await s.ensureGroup('g')
  const ids = await s.addMany(Array.from({ length: 10 }, () => makeEvent()))
  await redis.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 10, 'STREAMS', s.stream, '>')
  await s.ack('g', ids)
  assert.is(await s.trimSafe({ keep: 4 }), 6)
  assert.is(await redis.xlen(s.stream), 4)
})

/**
 * `redis` as trimSafe's client, with a hook: right before trimSafe sends the command that trims (XTRIM, or the
 * script), `interfere` runs on another connection, as another process would between a read and a write.
 * Records every command trimSafe sends.
 */
function hookedBeforeTrim(redis: Redis, interfere: () => Promise<unknown>): { client: RedisClient; sent: string[] } {
  const sent: string[] = []
  let fired = false
  const client = new Proxy(redis, {
    get(target, prop) {
      if (prop === 'call') {
        return async (command: string, ...args: (string | number | Buffer)[]) => {
          sent.push(command.toUpperCase())
          if (!fired && /^(XTRIM|EVALSHA|EVAL)$/i.test(command)) { fired = true; await interfere() }
          return target.call(command, ...args)
        }
      }
      if (prop === 'pipeline') sent.push('PIPELINE')
      const value = Reflect.get(target, prop) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    },
  })
  return { client, sent }
}

Client('a group created at 0 or moved back with XGROUP SETID 0 right before the trim keeps every entry it needs', async ({ redis }) => {
  for (const interference of ['create', 'setid'] as const) {
    const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
    await s.ensureGroup('g')
    await s.ensureGroup('rewound')
    const ids = await s.addMany(Array.from({ length: 10 }, () => makeEvent()))
    for (const group of ['g', 'rewound']) {
      await redis.xreadgroup('GROUP', group, 'c1', 'COUNT', 10, 'STREAMS', s.stream, '>')
      await s.ack(group, ids)
    }
    const hooked = hookedBeforeTrim(redis, () => (interference === 'create'
      ? redis.call('XGROUP', 'CREATE', s.stream, 'late', '0')
      : redis.call('XGROUP', 'SETID', s.stream, 'rewound', '0')))
    const removed = await new StreamClient({ redis: hooked.client, stream: s.stream }).trimSafe()
    // the group that now starts at 0 still finds all 10 entries
    assert.is(removed, 0, `${interference}: nothing trimmed`)
    assert.is(await redis.xlen(s.stream), 10, `${interference}: every entry kept`)
    const reread = await redis.xreadgroup('GROUP', interference === 'create' ? 'late' : 'rewound', 'c2', 'COUNT', 100, 'STREAMS', s.stream, '>') as [string, [string, string[]][]][]
    assert.equal(reread[0]?.[1].map(([id]) => id), ids, `${interference}: the group re-reads all 10`)
  }
})

Client('trimSafe is one script: nothing can run between reading the groups and trimming', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  await s.ensureGroup('g')
  const ids = await s.addMany(Array.from({ length: 6 }, () => makeEvent()))
  await redis.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 4, 'STREAMS', s.stream, '>')
  await s.ack('g', ids.slice(0, 2))
  assert.is(await s.trimSafe(), 2) // loads the script on this server
  await s.ack('g', ids.slice(2, 3))
  const hooked = hookedBeforeTrim(redis, async () => {})
  assert.is(await new StreamClient({ redis: hooked.client, stream: s.stream }).trimSafe({ keep: 2 }), 1)
  assert.equal(hooked.sent, ['EVALSHA'])
  assert.equal(((await redis.xrange(s.stream, '-', '+')) as [string, string[]][]).map(([id]) => id), ids.slice(3))
})

Client('trimSafe of a missing stream removes nothing; of a key that is not a stream fails with WRONGTYPE', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  assert.is(await s.trimSafe(), 0)
  await redis.set(s.stream, 'text')
  try {
    await s.trimSafe()
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /WRONGTYPE/)
  }
})

Client('trimSafe trims past ids far beyond 2^53 exactly (ids compared as text, not Lua numbers)', async ({ redis }) => {
  const s = new StreamClient({ redis, stream: `t-${randomUUID()}` })
  await s.ensureGroup('g')
  const ids = ['9007199254740993-18446744073709551614', '9007199254740993-18446744073709551615', '9007199254740994-0', '9007199254740994-1']
  for (const id of ids) await redis.xadd(s.stream, id, 'f', 'v')
  await redis.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 3, 'STREAMS', s.stream, '>')
  await s.ack('g', ids.slice(0, 2))
  // pending: the third; last delivered: the third; so exactly the first two go
  assert.is(await s.trimSafe(), 2)
  assert.equal(((await redis.xrange(s.stream, '-', '+')) as [string, string[]][]).map(([id]) => id), ids.slice(2))
  await s.ack('g', ids.slice(2, 3))
  assert.is(await s.trimSafe(), 1)
  assert.equal(((await redis.xrange(s.stream, '-', '+')) as [string, string[]][]).map(([id]) => id), ids.slice(3))
})

Client.run()
