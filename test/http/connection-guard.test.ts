import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import { clientKey, guardConnections } from '../../src/http/connection-guard.js'
import { startHttpServer, createRouter } from '../../src/http/server.js'

const Guard = suite('connection guard')

Guard('an IPv4-mapped IPv6 address is its IPv4 client; other IPv6 addresses share a client per /64', () => {
  assert.is(clientKey('127.0.0.2'), '127.0.0.2')
  assert.is(clientKey('::ffff:127.0.0.2'), '127.0.0.2')
  assert.is(clientKey('::FFFF:10.1.2.3'), '10.1.2.3')
  assert.is(clientKey('::ffff:7f00:2'), '127.0.0.2')
  assert.is(clientKey('2001:db8:1:2:aa::1'), '2001:db8:1:2::/64')
  assert.is(clientKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64')
  assert.is(clientKey('2001:0db8:0001:0002::9%eth0'), '2001:db8:1:2::/64')
  assert.is.not(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'))
  assert.is(clientKey('::1'), '0:0:0:0::/64')
  assert.is(clientKey(undefined), 'unknown')
})

Guard('bad caps fail at start naming the option', async () => {
  for (const [options, message] of [
    [{ maxConnections: 0, maxPerClient: 1 }, /"maxConnections" must be an integer of at least 1; got 0/],
    [{ maxConnections: 1, maxPerClient: 1.5 }, /"maxPerClient" must be an integer of at least 1; got 1.5/],
  ] as const) {
    try {
      guardConnections(createServer(), options)
      assert.unreachable()
    } catch (err) {
      assert.match((err as Error).message, message)
    }
  }
  try {
    await startHttpServer('127.0.0.1:0', createRouter([]), { maxConnectionsPerClient: 0 })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /"maxConnectionsPerClient" must be an integer of at least 1; got 0/)
  }
})

Guard.run()
