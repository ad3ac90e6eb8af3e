/** How to close each field of a test context; fields are closed in the order given here. */
export type Closers<C> = { [K in keyof C]?: (value: NonNullable<C[K]>) => unknown }

/**
 * Closes what a test context holds, for `after`/`after.each` hooks. A field that was never set (its
 * `before` hook failed half-way) is skipped; each field is removed from the context before it is closed,
 * so a later teardown never closes it twice; every closer runs even when an earlier one throws, and the
 * errors are thrown together at the end (test/run.cjs then fails the run and names the hook).
 *
 * @example
 * Traces.after.each((ctx) => release(ctx, { tracing: (t) => t.shutdown(), h: (h) => h.close(), w: (w) => w.close() }))
 */
export async function release<C extends object>(ctx: C, closers: Closers<C>): Promise<void> {
  const errors: unknown[] = []
  for (const key of Object.keys(closers) as (keyof C)[]) {
    const value = ctx[key]
    if (value === undefined || value === null) continue
    delete ctx[key]
    try {
      await closers[key]!(value as NonNullable<C[keyof C]>)
    } catch (err) {
      errors.push(err)
    }
  }
  if (errors.length === 1) throw errors[0]
  if (errors.length > 1) throw new AggregateError(errors, `release: ${errors.length} closers failed`)
}
