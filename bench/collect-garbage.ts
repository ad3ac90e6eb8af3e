import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A full garbage collection now, without starting node with --expose-gc: the benches call it between a run's
 * untimed setup and its timed part, so setup's garbage is not counted in the run.
 *
 * @example
 * await scenario.setup?.(ctx)
 * collectGarbage()
 */
export const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
})()
