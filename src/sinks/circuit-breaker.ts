/** A destination's breaker state: `closed` lets requests through, `open` parks them, `half_open` lets one probe through. */
export type BreakerState = 'closed' | 'half_open' | 'open'

/** What a breaker did with the outcome of a request: it counts as a failure, a success, or neither. */
export type BreakerOutcome = 'success' | 'failure' | 'neutral'

/** One destination's breaker as `CircuitBreakers.list` shows it. */
export interface BreakerSnapshot {
  readonly destination: string
  readonly state: BreakerState
  /** Failures in a row so far. */
  readonly consecutiveFailures: number
  /** When it last opened (ms since epoch); undefined while it never opened. */
  readonly openedAt?: number
  /** When the next half-open probe may go (ms since epoch); undefined unless open. */
  readonly nextProbeAt?: number
}

/**
 * Options of `CircuitBreakers`.
 *
 * @example
 * new CircuitBreakers({ failureThreshold: 5, coolDownMs: 10_000, onStateChange: (d, s) => metrics.destinationState(d, s) })
 */
export interface CircuitBreakerOptions {
  /** Failures in a row that open the breaker. @defaultValue 5 */
  readonly failureThreshold?: number
  /**
   * Share of failed requests in the current window of `windowMs` (windows follow one another) that opens the
   * breaker, once the window holds at least `minRequests` requests. @defaultValue 0.5
   */
  readonly failureRatio?: number
  /** The window of `failureRatio`, in ms. @defaultValue 30000 */
  readonly windowMs?: number
  /** Requests in the window before `failureRatio` applies. @defaultValue 20 */
  readonly minRequests?: number
  /** Wait (ms) after opening before the first half-open probe; each failed probe doubles it. @defaultValue 10000 */
  readonly coolDownMs?: number
  /** The longest cool-down (ms) after failed probes. @defaultValue 300000 */
  readonly maxCoolDownMs?: number
  /** Told each time a destination's breaker changes state (for `webhook_destination_state` and the shared snapshot). */
  readonly onStateChange?: (destination: string, state: BreakerState, snapshot: BreakerSnapshot) => void
  /** The clock, for tests. @defaultValue Date.now */
  readonly now?: () => number
}

/** Whether a request may go now, and when to come back when it may not. */
export type BreakerAdmission = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number }

interface Breaker {
  state: BreakerState
  consecutiveFailures: number
  coolDownMs: number
  openedAt?: number
  nextProbeAt: number
  probing: boolean
  /** Forgets the breaker once nobody asked for its probe for a while (set while it is open or half-open). */
  idleTimer?: NodeJS.Timeout
  /** The current window (tumbling): when it began, requests and failures in it. */
  windowStart: number
  requests: number
  failures: number
}

// how long a half-open probe may take before another one is let through
const PROBE_LOST_MS = 60_000
// a breaker whose probe was due this many cool-downs ago and that no delivery asked for is forgotten: a parked
// delivery comes back within one cool-down of the probe time, so none is waiting for it (the destination was
// removed, disabled or gets no more traffic)
const IDLE_COOL_DOWNS = 2

function ratio(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!(v > 0 && v <= 1)) throw new RangeError(`CircuitBreakers: "${name}" must be above 0 and at most 1; got ${value}`)
  return v
}

function whole(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`CircuitBreakers: "${name}" must be an integer of at least 1; got ${value}`)
  return v
}

/**
 * A circuit breaker per destination, in this process. It opens after `failureThreshold` failures in a row, or
 * when `failureRatio` of the requests in `windowMs` failed; while open, `admit` says no and how long to wait, so
 * the caller parks the delivery instead of failing it. After the cool-down one half-open probe goes through: a
 * success closes the breaker, a failure opens it again with a doubled cool-down (up to `maxCoolDownMs`).
 * An open or half-open breaker that no request asked about for two cool-downs after its probe was due (its
 * destination was removed, disabled, or gets no more traffic) is forgotten and reported `closed`, so the gauge
 * and the shared board do not show it open for ever; its next request starts afresh. `close()` stops its timers.
 *
 * @example
 * const breakers = new CircuitBreakers()
 * const gate = breakers.admit('gh-main')
 * if (gate.allowed) breakers.record('gh-main', (await send()).ok ? 'success' : 'failure')
 */
export class CircuitBreakers {
  private readonly threshold: number
  private readonly failureRatio: number
  private readonly windowMs: number
  private readonly minRequests: number
  private readonly coolDownMs: number
  private readonly maxCoolDownMs: number
  private readonly now: () => number
  private readonly breakers = new Map<string, Breaker>()

  constructor(private readonly options: CircuitBreakerOptions = {}) {
    this.threshold = whole('failureThreshold', options.failureThreshold, 5)
    this.failureRatio = ratio('failureRatio', options.failureRatio, 0.5)
    this.windowMs = whole('windowMs', options.windowMs, 30_000)
    this.minRequests = whole('minRequests', options.minRequests, 20)
    this.coolDownMs = whole('coolDownMs', options.coolDownMs, 10_000)
    this.maxCoolDownMs = whole('maxCoolDownMs', options.maxCoolDownMs, 300_000)
    if (this.maxCoolDownMs < this.coolDownMs) {
      throw new RangeError(`CircuitBreakers: "maxCoolDownMs" (${this.maxCoolDownMs}) must be at least "coolDownMs" (${this.coolDownMs})`)
    }
    this.now = options.now ?? Date.now
  }

  /**
   * Whether a request to `destination` may go now. An open breaker whose cool-down passed turns half-open and
   * admits exactly one probe; the caller must `record` its outcome.
   */
  admit(destination: string): BreakerAdmission {
    const b = this.breakers.get(destination)
    if (!b || b.state === 'closed') return { allowed: true }
    const now = this.now()
    // a probe whose outcome never came (its request was lost) is replaced once its own cool-down passed
    if (now >= b.nextProbeAt) {
      // the probe's own deadline first: the change starts the idle watch from it
      b.probing = true
      b.nextProbeAt = now + Math.max(b.coolDownMs, PROBE_LOST_MS)
      this.change(destination, b, 'half_open')
      return { allowed: true }
    }
    // while a probe is out, come back after a cool-down: the probe decides before then
    return { allowed: false, retryAfterMs: Math.max(1, b.state === 'open' ? b.nextProbeAt - now : b.coolDownMs) }
  }

  /** Records the outcome of an admitted request. */
  record(destination: string, outcome: BreakerOutcome): void {
    const now = this.now()
    let b = this.breakers.get(destination)
    if (!b) {
      if (outcome === 'neutral') return
      b = { state: 'closed', consecutiveFailures: 0, coolDownMs: this.coolDownMs, nextProbeAt: 0, probing: false, windowStart: now, requests: 0, failures: 0 }
      this.breakers.set(destination, b)
    }
    if (b.state === 'half_open' && b.probing) {
      if (outcome === 'neutral') { b.probing = false; this.reopen(destination, b, now, b.coolDownMs); return }
      b.probing = false
      if (outcome === 'success') { this.closeBreaker(destination, b); return }
      this.reopen(destination, b, now, Math.min(this.maxCoolDownMs, b.coolDownMs * 2))
      return
    }
    if (outcome === 'neutral' || b.state !== 'closed') return
    if (now - b.windowStart >= this.windowMs) { b.windowStart = now; b.requests = 0; b.failures = 0 }
    b.requests++
    if (outcome === 'success') { b.consecutiveFailures = 0; return }
    b.failures++
    b.consecutiveFailures++
    if (b.consecutiveFailures >= this.threshold || (b.requests >= this.minRequests && b.failures / b.requests >= this.failureRatio)) {
      this.reopen(destination, b, now, this.coolDownMs)
    }
  }

  /** Stops the timers that forget idle breakers (no state change is reported). Safe to call more than once. */
  close(): void {
    for (const b of this.breakers.values()) clearTimeout(b.idleTimer)
  }

  /** Every destination whose breaker is open or half-open, or closed with failures in a row. */
  list(): BreakerSnapshot[] {
    return [...this.breakers.entries()].filter(([, b]) => b.state !== 'closed' || b.consecutiveFailures > 0)
      .map(([destination, b]) => this.snapshot(destination, b))
  }

  private snapshot(destination: string, b: Breaker): BreakerSnapshot {
    return {
      destination, state: b.state, consecutiveFailures: b.consecutiveFailures, openedAt: b.openedAt,
      nextProbeAt: b.state === 'open' ? b.nextProbeAt : undefined,
    }
  }

  private reopen(destination: string, b: Breaker, now: number, coolDownMs: number): void {
    b.coolDownMs = coolDownMs
    b.openedAt = now
    b.nextProbeAt = now + coolDownMs
    this.change(destination, b, 'open')
  }

  private closeBreaker(destination: string, b: Breaker): void {
    b.consecutiveFailures = 0
    b.coolDownMs = this.coolDownMs
    b.windowStart = this.now()
    b.requests = 0
    b.failures = 0
    this.change(destination, b, 'closed')
  }

  private change(destination: string, b: Breaker, state: BreakerState): void {
    if (b.state === state && state !== 'open') return
    b.state = state
    clearTimeout(b.idleTimer)
    if (state !== 'closed') this.watchIdle(destination, b)
    this.options.onStateChange?.(destination, state, this.snapshot(destination, b))
  }

  // a probe time that moved on means a request came for it since; one that did not is a destination left alone
  private watchIdle(destination: string, b: Breaker): void {
    const forgetAt = () => b.nextProbeAt + IDLE_COOL_DOWNS * b.coolDownMs
    const check = () => {
      const waitMs = forgetAt() - this.now()
      if (waitMs > 0) {
        b.idleTimer = setTimeout(check, waitMs)
        // a guard, not work: it must not keep the process alive
        b.idleTimer.unref()
        return
      }
      this.breakers.delete(destination)
      this.closeBreaker(destination, b)
    }
    check()
  }
}
