import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseListenAddress } from '../../src/config/listen-address.js'

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

Address.run()
