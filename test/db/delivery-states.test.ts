import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createDb, type Db } from '../../src/db/database.js'
import { DeliveryStateStore } from '../../src/db/delivery-states.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { sharedPostgres } from '../helpers/servers.js'
import { release } from '../helpers/release.js'

const States = suite<{ handle: Db }>('delivery states', {} as { handle: Db })
States.before.each(async (ctx) => {
  ctx.handle = await createDb({ url: await (await sharedPostgres()).createDatabase(), poolSize: 2 })
  await migrateToLatest(ctx.handle.db)
  await ctx.handle.db.insertInto('webhook_events').values({ id: 'e1', tool_id: 'fan', tenant_id: 'acme', event_type: 'webhook.github.push',
    repository: 'acme/api', payload: '{}', stream_id: '1-0', received_at: new Date().toISOString() }).execute()
})
States.after.each((ctx) => release(ctx, { handle: (h) => h.close() }))

const event = { tool_id: 'fan', id: 'e1' }
const stateOf = async (handle: Db) => {
  const row = await handle.db.selectFrom('webhook_events').select('deliveries').executeTakeFirstOrThrow()
  return Object.fromEntries(Object.entries(row.deliveries ?? {}).map(([k, v]) => [k, v.state]))
}

States('a parked retry\'s pending written after another worker delivered the pair leaves it delivered; from failed it is pending again', async ({ handle }) => {
  const states = new DeliveryStateStore({ db: handle.db })
  await states.start([{ event, destinationId: 'ci', state: 'pending' }, { event, destinationId: 'audit', state: 'pending' }])
  await states.set([{ event, destinationId: 'ci', state: 'delivered' }, { event, destinationId: 'audit', state: 'failed', errorCode: 'DESTINATION_4XX' }])
  // late writes, as from a worker that parked these pairs before the other one finished them
  await states.set([{ event, destinationId: 'ci', state: 'pending', attempts: 2 }, { event, destinationId: 'audit', state: 'pending', attempts: 1 }])
  assert.equal(await stateOf(handle), { ci: 'delivered', audit: 'pending' })
})

States.run()
