import { type ConfigSources, duration, integer, invalid, text, type RawSetting } from './config-sources.js'
import { parseListenAddress, type ListenAddress } from './listen-address.js'

/**
 * The admin API's own listener, its failed-login throttle and the bounds of replays (ADMIN_ADDR,
 * ADMIN_LOGIN_MAX_FAILURES, ADMIN_LOGIN_WINDOW, REPLAY_MAX_EVENTS, REPLAY_CONFIRM_OVER).
 */
export interface AdminSettings {
  readonly admin: {
    /**
     * Where the admin API listens (ADMIN_ADDR), apart from ingest so webhook senders can neither reach nor exhaust
     * it. Unset (`ADMIN_ADDR=off`): no admin listener. Without ADMIN_TOKEN there is none either.
     * @defaultValue 127.0.0.1:8081 (loopback only)
     */
    readonly addr?: ListenAddress
    /** Failed bearer-token checks one client address may make per `loginWindowMs` before it gets 429. @defaultValue 5 */
    readonly loginMaxFailures: number
    /** The window those failures are counted in, in ms (ADMIN_LOGIN_WINDOW). @defaultValue 60000 */
    readonly loginWindowMs: number
    /** The most events one replay may send (REPLAY_MAX_EVENTS). @defaultValue 100000 */
    readonly replayMaxEvents: number
    /** A replay of more events than this needs a confirmation (REPLAY_CONFIRM_OVER). @defaultValue 100 */
    readonly replayConfirmOver: number
  }
}

function listenAddressOrOff(raw: RawSetting): ListenAddress | undefined {
  const value = text(raw)
  if (value.toLowerCase() === 'off') return undefined
  try {
    return parseListenAddress(value, raw.where)
  } catch {
    return invalid(raw, 'a listen address such as "127.0.0.1:8081" or "[::1]:8081", or "off" for no admin listener')
  }
}

/**
 * Reads the admin listener's settings: ADMIN_ADDR / `--admin-addr` / `admin.addr` (default `127.0.0.1:8081`,
 * `off` disables the listener), ADMIN_LOGIN_MAX_FAILURES / `admin.login_max_failures` (5, 1–1000) and
 * ADMIN_LOGIN_WINDOW / `admin.login_window` (60s, at least 1s), REPLAY_MAX_EVENTS / `admin.replay_max_events` (100000,
 * 1–10⁷) and REPLAY_CONFIRM_OVER / `admin.replay_confirm_over` (100, 0–10⁷). Bad values throw a ConfigError naming the key.
 *
 * @example
 * adminSettings(new ConfigSources({ ADMIN_ADDR: 'off' }, {}, undefined)).admin.addr // undefined
 */
export function adminSettings(src: ConfigSources): AdminSettings {
  const addrRaw = src.pick({ flag: 'admin-addr', env: 'ADMIN_ADDR', file: 'admin.addr' })
  const addr = addrRaw ? listenAddressOrOff(addrRaw) : parseListenAddress('127.0.0.1:8081')
  const failuresRaw = src.pick({ env: 'ADMIN_LOGIN_MAX_FAILURES', file: 'admin.login_max_failures' })
  const windowRaw = src.pick({ env: 'ADMIN_LOGIN_WINDOW', file: 'admin.login_window' })
  const maxEventsRaw = src.pick({ env: 'REPLAY_MAX_EVENTS', file: 'admin.replay_max_events' })
  const confirmOverRaw = src.pick({ env: 'REPLAY_CONFIRM_OVER', file: 'admin.replay_confirm_over' })
  return {
    admin: {
      ...(addr ? { addr } : {}),
      loginMaxFailures: failuresRaw ? integer(failuresRaw, 1, 1000) : 5,
      loginWindowMs: windowRaw ? duration(windowRaw, 1000) : 60_000,
      replayMaxEvents: maxEventsRaw ? integer(maxEventsRaw, 1, 10_000_000) : 100_000,
      replayConfirmOver: confirmOverRaw ? integer(confirmOverRaw, 0, 10_000_000) : 100,
    },
  }
}
