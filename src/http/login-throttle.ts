import { positiveInteger as ownedPositiveInteger } from '../core/positive-integer.js'

/** Options of `LoginThrottle`. */
export interface LoginThrottleOptions {
  /** Failed logins one address may make within `windowMs`; the next attempt is refused. @defaultValue 5 */
  readonly maxFailures?: number
  /** The sliding window failures are counted in, in ms. @defaultValue 60000 */
  readonly windowMs?: number
  /**
   * Addresses remembered at most; past it the least recently seen one is forgotten, so a flood of addresses
   * cannot grow memory (each costs at most `maxFailures` timestamps). @defaultValue 10000
   */
  readonly maxAddresses?: number
}

const positiveInteger = ownedPositiveInteger.bind(undefined, 'LoginThrottle')

/**
 * Counts failed logins per client address in a sliding window. Once an address has `maxFailures` failures in
 * the last `windowMs`, `retryAfterMs` tells how long it must wait, and the caller refuses it without checking
 * its credentials. Each address has its own count: a success resets only its own.
 *
 * @example
 * const throttle = new LoginThrottle({ maxFailures: 5, windowMs: 60_000 })
 * if (throttle.retryAfterMs(address) > 0) return tooMany()
 * if (!tokenMatches) throttle.failed(address); else throttle.succeeded(address)
 */
export class LoginThrottle {
  private readonly maxFailures: number
  private readonly windowMs: number
  private readonly maxAddresses: number
  // failure times (ms) by address, oldest first; Map order is the LRU order (a touched address moves to the end)
  private readonly failures = new Map<string, number[]>()

  constructor(options: LoginThrottleOptions = {}) {
    this.maxFailures = positiveInteger('maxFailures', options.maxFailures, 5)
    this.windowMs = positiveInteger('windowMs', options.windowMs, 60_000)
    this.maxAddresses = positiveInteger('maxAddresses', options.maxAddresses, 10_000)
  }

  /** Addresses remembered now (at most `maxAddresses`). */
  get size(): number {
    return this.failures.size
  }

  /** How long `address` must wait before its next login is checked, in ms; 0 when it may try now. */
  retryAfterMs(address: string): number {
    const times = this.recent(address)
    if (!times || times.length < this.maxFailures) return 0
    return Math.max(1, (times[0] as number) + this.windowMs - Date.now())
  }

  /** Records one failed login of `address`. */
  failed(address: string): void {
    const times = this.recent(address) ?? []
    times.push(Date.now())
    if (times.length > this.maxFailures) times.shift()
    this.failures.delete(address)
    this.failures.set(address, times)
    if (this.failures.size > this.maxAddresses) this.failures.delete(this.failures.keys().next().value as string)
  }

  /** Forgets the failures of `address` (and of no other). */
  succeeded(address: string): void {
    this.failures.delete(address)
  }

  private recent(address: string): number[] | undefined {
    const times = this.failures.get(address)
    if (!times) return undefined
    const cutoff = Date.now() - this.windowMs
    while (times.length > 0 && (times[0] as number) <= cutoff) times.shift()
    if (times.length === 0) {
      this.failures.delete(address)
      return undefined
    }
    return times
  }
}
