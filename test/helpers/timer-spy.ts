/** What {@link spyOnTimers} saw. */
export interface TimerSpy {
  /** Timers (setTimeout, setInterval, setImmediate) created since the spy started that neither fired nor were cleared. */
  pending(): number
  /** How many timers were created since the spy started. */
  created(): number
  /** Puts the real timer functions back. */
  restore(): void
}

/**
 * Counts the timers code creates and leaves behind, by wrapping the global timer functions (the timers still
 * run for real). For "unsubscribing clears the timer" tests: after unsubscribe no value can reach the
 * subscriber, so only the timer itself shows whether it was cleared.
 *
 * @example
 * const timers = spyOnTimers()
 * try { sub = source.subscribe(); sub.unsubscribe(); assert.is(timers.pending(), 0) } finally { timers.restore() }
 */
export function spyOnTimers(): TimerSpy {
  const g = globalThis as unknown as Record<string, (...args: unknown[]) => unknown>
  const names = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate'] as const
  const real = Object.fromEntries(names.map((n) => [n, g[n]!])) as Record<(typeof names)[number], (...args: unknown[]) => unknown>
  const live = new Set<unknown>()
  let created = 0
  const start = (set: 'setTimeout' | 'setInterval' | 'setImmediate', once: boolean) => (fn: unknown, ...rest: unknown[]) => {
    created += 1
    let handle: unknown
    const run = (...args: unknown[]) => {
      if (once) live.delete(handle)
      return (fn as (...a: unknown[]) => unknown)(...args)
    }
    handle = real[set](run, ...rest)
    live.add(handle)
    return handle
  }
  const stop = (clear: 'clearTimeout' | 'clearInterval' | 'clearImmediate') => (handle: unknown) => {
    live.delete(handle)
    return real[clear](handle)
  }
  g.setTimeout = start('setTimeout', true)
  g.setInterval = start('setInterval', false)
  g.setImmediate = start('setImmediate', true)
  g.clearTimeout = stop('clearTimeout')
  g.clearInterval = stop('clearInterval')
  g.clearImmediate = stop('clearImmediate')
  return {
    pending: () => live.size,
    created: () => created,
    restore: () => { for (const n of names) g[n] = real[n] },
  }
}
