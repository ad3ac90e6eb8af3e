import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeConfig } from '../../src/config/describe-config.js'
import { loadConfig } from '../../src/config/load-config.js'

const dir = mkdtempSync(join(tmpdir(), 'hookstream-admin-config-'))
const Admin = suite('admin settings')
Admin.after(() => rmSync(dir, { recursive: true, force: true }))

function failure(run: () => unknown): Error & { code?: string } {
  try {
    run()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected loadConfig to throw')
}

Admin('the admin listener defaults to 127.0.0.1:8081 with 5 failed logins per 60 s; "off" turns it off', () => {
  assert.equal(loadConfig({ env: {} }).admin, { addr: { host: '127.0.0.1', port: 8081 }, loginMaxFailures: 5, loginWindowMs: 60_000, replayMaxEvents: 100_000, replayConfirmOver: 100 })
  for (const off of ['off', 'OFF']) assert.is(loadConfig({ env: { ADMIN_ADDR: off } }).admin.addr, undefined)
  const c = loadConfig({ env: { ADMIN_ADDR: ':9091', ADMIN_LOGIN_MAX_FAILURES: '3', ADMIN_LOGIN_WINDOW: '5m' } })
  assert.equal(c.admin, { addr: { host: '0.0.0.0', port: 9091 }, loginMaxFailures: 3, loginWindowMs: 300_000, replayMaxEvents: 100_000, replayConfirmOver: 100 })
})

Admin('flag beats env beats the file for the admin address; the throttle settings come from env or file', () => {
  const file = join(dir, 'admin.yaml')
  writeFileSync(file, 'admin:\n  addr: "[::1]:7000"\n  login_max_failures: 10\n  login_window: 30s\n')
  assert.equal(loadConfig({ env: {}, file }).admin, { addr: { host: '::1', port: 7000 }, loginMaxFailures: 10, loginWindowMs: 30_000, replayMaxEvents: 100_000, replayConfirmOver: 100 })
  assert.equal(loadConfig({ env: { ADMIN_ADDR: '127.0.0.1:7001' }, file }).admin.addr, { host: '127.0.0.1', port: 7001 })
  assert.equal(loadConfig({ env: { ADMIN_ADDR: '127.0.0.1:7001' }, flags: { 'admin-addr': 'off' }, file }).admin.addr, undefined)
})

Admin('replay bounds come from REPLAY_MAX_EVENTS and REPLAY_CONFIRM_OVER, or the file; bad ones are named', () => {
  const c = loadConfig({ env: { REPLAY_MAX_EVENTS: '5000', REPLAY_CONFIRM_OVER: '0' } }).admin
  assert.equal([c.replayMaxEvents, c.replayConfirmOver], [5000, 0])
  const file = join(dir, 'replay.yaml')
  writeFileSync(file, 'admin:\n  replay_max_events: 20\n  replay_confirm_over: 5\n')
  const f = loadConfig({ env: {}, file }).admin
  assert.equal([f.replayMaxEvents, f.replayConfirmOver], [20, 5])
  assert.is(failure(() => loadConfig({ env: { REPLAY_MAX_EVENTS: '0' } })).message, 'REPLAY_MAX_EVENTS must be an integer from 1 to 10000000; got "0"')
  assert.is(failure(() => loadConfig({ env: { REPLAY_CONFIRM_OVER: '-1' } })).message, 'REPLAY_CONFIRM_OVER must be an integer from 0 to 10000000; got "-1"')
})

Admin('a bad admin setting names the key, what is expected and what was given', () => {
  const cases: [Record<string, string>, string][] = [
    [{ ADMIN_ADDR: '8081' }, 'ADMIN_ADDR must be a listen address such as "127.0.0.1:8081" or "[::1]:8081", or "off" for no admin listener; got "8081"'],
    [{ ADMIN_LOGIN_MAX_FAILURES: '0' }, 'ADMIN_LOGIN_MAX_FAILURES must be an integer from 1 to 1000; got "0"'],
    [{ ADMIN_LOGIN_WINDOW: '10ms' }, 'ADMIN_LOGIN_WINDOW must be a duration such as "24h" or "90m"; got "10ms"'],
  ]
  for (const [env, message] of cases) {
    const err = failure(() => loadConfig({ env }))
    assert.is(err.code, 'CONFIG_INVALID')
    assert.is(err.message, message)
  }
})

Admin('the configuration summary shows where the admin API listens, or why it is off, and the throttle', () => {
  assert.match(describeConfig(loadConfig({ env: { ADMIN_TOKEN: 'admin-token-0123456789' } })), /admin\s+127\.0\.0\.1:8081, 429 after 5 failed logins per address in 1m\n/)
  assert.match(describeConfig(loadConfig({ env: {} })), /admin\s+127\.0\.0\.1:8081 \(off: no ADMIN_TOKEN\), 429 after 5/)
  assert.match(describeConfig(loadConfig({ env: { ADMIN_ADDR: 'off' } })), /admin\s+off \(ADMIN_ADDR=off\)\n/)
})

Admin('the README states the admin defaults the code uses: 127.0.0.1:8081, 5 failures per 60 s, 10,000 addresses, 64 connections, 16 per client', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').replace(/\s+/g, ' ')
  assert.match(readme, '| `admin.addr` | `127.0.0.1:8081` (loopback only) |')
  assert.match(readme, 'after `ADMIN_LOGIN_MAX_FAILURES` (5) of them within `ADMIN_LOGIN_WINDOW` (60 s)')
  assert.match(readme, 'at most 10,000 addresses are remembered')
  assert.match(readme, 'At most 64 open connections, 16 of them per client address (an IPv6 client per /64), 10 s to send the headers and 30 s for the whole request')
  assert.equal(loadConfig({ env: {} }).admin, { addr: { host: '127.0.0.1', port: 8081 }, loginMaxFailures: 5, loginWindowMs: 60_000, replayMaxEvents: 100_000, replayConfirmOver: 100 })
  const throttle = readFileSync(new URL('../../src/http/login-throttle.ts', import.meta.url), 'utf8')
  assert.match(throttle, "positiveInteger('maxAddresses', options.maxAddresses, 10_000)")
  const adminListener = readFileSync(new URL('../../src/service/admin.ts', import.meta.url), 'utf8')
  assert.match(adminListener, 'const ADMIN_LISTENER_LIMITS = { maxConnections: 64, maxConnectionsPerClient: 16, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 }')
})

Admin.run()
