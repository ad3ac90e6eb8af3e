import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer, type AddressInfo } from 'node:net'
import { listenOn, parseListenAddress } from '../../src/config/listen-address.js'

const Address = suite('parseListenAddress')

Address('reads ":port", "host:port" and "[ipv6]:port"', () => {
  assert.equal(parseListenAddress(':8080'), { host: '0.0.0.0', port: 8080 })
  assert.equal(parseListenAddress('127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 })
  assert.equal(parseListenAddress('[::1]:80'), { host: '::1', port: 80 })
  assert.equal(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 })
})

Address('names the key and the expected form when the text is not an address', () => {
  for (const text of ['8080', 'host:', ':70000', '[::1]', 'a b:80', '']) {
    try {
      parseListenAddress(text, 'HEALTH_ENDPOINT')
      assert.unreachable(text)
    } catch (err) {
      assert.is((err as { code?: string }).code, 'CONFIG_INVALID')
      assert.is((err as Error).message,
        `HEALTH_ENDPOINT must be a listen address such as ":8080", "127.0.0.1:8080" or "[::1]:8080"; got ${JSON.stringify(text)}`)
    }
  }
})

Address('listenOn names the key when the address is taken or its host name does not resolve, and passes other errors on', async () => {
  const busy = createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  const address = { host: '127.0.0.1', port: (busy.address() as AddressInfo).port }
  const second = createServer()
  try {
    await listenOn('HTTP_ADDR', address, () => new Promise<void>((resolve, reject) => {
      second.once('error', reject)
      second.listen(address.port, address.host, resolve)
    }))
    assert.unreachable('the port is taken')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'CONFIG_INVALID')
    assert.is((err as Error).message, `HTTP_ADDR is 127.0.0.1:${address.port}, which is in use already (EADDRINUSE); stop the process listening there, or give HTTP_ADDR, ADMIN_ADDR and HEALTH_ENDPOINT different ports`)
  } finally {
    busy.close()
  }
  // a host name with a typo: getaddrinfo's error, made here so that no lookup leaves the machine
  const unresolved = Object.assign(new Error('getaddrinfo ENOTFOUND hookstrem-admin'), { code: 'ENOTFOUND' })
  try {
    await listenOn('ADMIN_ADDR', { host: 'hookstrem-admin', port: 8081 }, () => Promise.reject(unresolved))
    assert.unreachable('the host does not resolve')
  } catch (err) {
    assert.match((err as Error).message, /^ADMIN_ADDR is hookstrem-admin:8081, which is a host name this machine cannot resolve \(ENOTFOUND\)/)
  }
  const other = new Error('something else')
  try {
    await listenOn('ADMIN_ADDR', { host: '::1', port: 8081 }, () => Promise.reject(other))
    assert.unreachable('rejected')
  } catch (err) {
    assert.is(err, other)
  }
})

Address.run()
