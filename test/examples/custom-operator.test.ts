import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { runExample } from '../../examples/custom-operator.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'

test('the README custom-operator example stores the allowed tenant and dead-letters the other', async () => {
  const outcomes = await runExample({
    redisUrl: (await sharedRedis()).url,
    databaseUrl: await (await sharedPostgres()).createDatabase(),
    prefix: `ex-${randomUUID()}:`,
  })
  assert.equal(outcomes.map((o) => [o.id.split('-')[0], o.outcome, o.code]).sort(), [
    ['no', 'dead_lettered', 'TENANT_NOT_ALLOWED'],
    ['ok', 'stored', undefined],
  ])
})

test.run()
