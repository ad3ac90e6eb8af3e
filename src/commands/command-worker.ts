import { parseDuration } from '../core/duration.js'
import type { RetryPolicy } from '../core/tool.js'
import { checkCommandSchema, type CommandSchema } from './command-schema.js'

/** Where workers report the unexpected (slow periodic runs, dead-lettered commands). A pino logger fits. */
export interface WorkerLogger {
  warn(obj: Record<string, unknown>, msg: string): void
}

/** The stream entry a command came in, as a handler sees it. */
export interface CommandMessage {
  /** Stream entry id, e.g. `"1718000000000-0"`. */
  readonly id: string
  /** When the command was appended to the log (from the entry id). */
  readonly timestamp: Date
  /** How many times this worker's group delivered the entry (1 on the first read; more after a crash). */
  readonly deliveryCount: number
}

/** What a command handler receives. */
export interface CommandContext<S, P> {
  /** Name of the worker handling the command. */
  readonly worker: string
  /** Command name, e.g. `"feature/process"`. */
  readonly command: string
  /** The decoded payload (checked against the command's schema when it has one). */
  readonly payload: P
  readonly message: CommandMessage
  /** The worker's own state object (the `state` you defined it with). */
  readonly state: S
  /** Fires when the worker stops. Pass it to fetch/timers; a handler that ends because of it is retried after restart. */
  readonly signal: AbortSignal
  /** Try number of this command in this delivery, 1 on the first try. */
  readonly attempt: number
  readonly logger: WorkerLogger
  /** Appends a follow-up command to the same log (schema-checked like `app.execute`); resolves to its entry id. */
  readonly execute: ExecuteCommand
  /**
   * True while the worker rebuilds its state from the log on start (`replay`): apply the command to `state` and
   * skip side effects (emails, HTTP calls). During a replay `execute` appends nothing and resolves to "".
   */
  readonly isReplay: boolean
}

/**
 * Rebuilding a worker's state from the command log on start (Petrock's replay). The worker must be `sequential`,
 * so its state follows log order, and run in one process (its state lives there).
 */
export interface ReplayOptions<S> {
  /** A fresh state: the starting point of a replay from the beginning of the log. */
  readonly fresh: () => S
  /**
   * Save a snapshot (Redis key `<stream>:snapshot:<worker>`) after this many handled, dead-lettered or skipped (not
   * this worker's) commands, so a restart replays only what came after it, and the log may be trimmed up to it. @defaultValue 0
   * (no snapshots: replay from the beginning, and the trim keeps the whole log)
   */
  readonly snapshotEvery?: number
  /**
   * The state as JSON-able data (plain objects, arrays, strings, numbers, booleans), for the snapshot: one holding a
   * Map, Set, Date or class instance is not saved (a warning names the field). @defaultValue the state itself
   */
  readonly save?: (state: S) => unknown
  /** A state from a snapshot's data. @defaultValue the data itself */
  readonly load?: (saved: unknown) => S
  /** Most log entries one replay reads; over it the start fails (save snapshots or raise it). @defaultValue 1000000 */
  readonly maxEntries?: number
}

/** Replay settings after validation. */
export interface ResolvedReplay<S> {
  readonly fresh: () => S
  readonly snapshotEvery: number
  // a method, so a worker of any state still registers as WorkerDefinition<unknown> (checked bivariantly)
  save(state: S): unknown
  readonly load: (saved: unknown) => S
  readonly maxEntries: number
}

/** Appends a command to the worker's own log; resolves to the entry id. */
export type ExecuteCommand = (command: string, payload?: unknown) => Promise<string>

/**
 * Handles one command. Throw (or reject) to fail it: a PipelineError's `kind` decides retry; a plain Error is
 * transient. Annotate the context (`ctx: CommandContext<State, { id: string }>`) to type the payload.
 */
// a method signature is checked bivariantly, so a handler may declare the payload type its schema guarantees
export type CommandHandler<S, P = unknown> = { handle(ctx: CommandContext<S, P>): unknown }['handle']

/** A command with a payload schema: a payload that does not match is dead-lettered at once, never retried. */
export interface CommandRoute<S, P = unknown> {
  readonly schema: CommandSchema<P>
  readonly handle: CommandHandler<S, P>
}

/** What periodic work receives. */
export interface PeriodicContext<S> {
  readonly worker: string
  readonly state: S
  /** Fires when the worker stops; a run in progress should end soon after. */
  readonly signal: AbortSignal
  readonly logger: WorkerLogger
  /** Appends a command to the worker's log, e.g. to start work found by a periodic scan. */
  readonly execute: ExecuteCommand
}

/** One periodic run; may be async. Throwing is logged and the next tick runs again. */
export type PeriodicRun<S> = { run(ctx: PeriodicContext<S>): unknown }['run']

/** Work a worker does on a timer. Runs never overlap: a tick that comes while a run is still going is skipped. */
export interface PeriodicWork<S> {
  /** Interval between ticks, as a duration (`"5s"`, `"1m"`) or milliseconds; at most 2147483647 ms (about 24 days). */
  readonly every: string | number
  readonly run: PeriodicRun<S>
  /** A run taking longer than this (ms) logs a warning. @defaultValue 1000 */
  readonly slowMs?: number
}

/** A worker as you declare it with `defineWorker`. */
export interface WorkerDefinitionInput<S> {
  /** Unique within the app; also the name of the worker's consumer group. */
  readonly name: string
  readonly description: string
  /** The worker's own state, handed to every handler and periodic run. @defaultValue {} */
  readonly state?: S
  /** Handlers by command name: a function, or `{ schema, handle }`. */
  readonly commands: Readonly<Record<string, CommandHandler<S> | CommandRoute<S>>>
  readonly periodic?: PeriodicWork<S>
  /** Handle commands strictly one at a time, in log order. @defaultValue false */
  readonly sequential?: boolean
  /** Commands handled at once when not sequential. @defaultValue 16 */
  readonly concurrency?: number
  /** Retries of failed commands (ms); unset fields keep the defaults (3 retries, 200ms doubling up to 5s, 30s in all). */
  readonly retry?: Partial<RetryPolicy>
  /** A command delivered more often than this (crash loop) is dead-lettered before its handler runs. @defaultValue 10 */
  readonly maxDeliveries?: number
  /** Where the worker's group starts the first time it runs: `"$"` = commands appended from then on, `"0"` = the whole log. @defaultValue "$" */
  readonly startId?: string
  /** Rebuild the state from the log (or a snapshot and the log after it) on every start. @defaultValue off */
  readonly replay?: ReplayOptions<S>
}

/** One command route after validation. */
export interface ResolvedRoute<S> {
  readonly schema?: CommandSchema
  readonly handle: CommandHandler<S, unknown>
}

/** A validated worker definition, ready to register with `createApp().register()`. */
export interface WorkerDefinition<S = unknown> {
  readonly name: string
  readonly description: string
  readonly state: S
  readonly routes: ReadonlyMap<string, ResolvedRoute<S>>
  readonly periodic?: { readonly everyMs: number; readonly slowMs: number; readonly run: PeriodicRun<S> }
  readonly concurrency: number
  /** Handles strictly one command at a time in log order (so its retries wait in place instead of being parked). */
  readonly sequential: boolean
  readonly retry: RetryPolicy
  readonly maxDeliveries: number
  readonly startId: string
  readonly replay?: ResolvedReplay<S>
}

/** Retry schedule of command handlers unless a worker sets its own. */
export const DEFAULT_COMMAND_RETRY: RetryPolicy = Object.freeze({
  maxRetries: 3, initialIntervalMs: 200, maxIntervalMs: 5000, multiplier: 2, maxElapsedMs: 30_000,
})

/** The longest delay a Node timer waits; a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/

function positive(where: string, key: string, value: number, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < (integer ? 1 : 0) || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${where}: "${key}" must be ${integer ? 'an integer of at least 1' : 'a non-negative number'}; got ${String(value)}`)
  }
  return value
}

/**
 * Declares a command worker: its name, what it does, its state, a handler per command name and optional
 * periodic work. Everything is checked here, so a mistake fails at startup with the option named.
 *
 * @example
 * const features = defineWorker({
 *   name: 'features',
 *   description: 'Processes and updates features',
 *   state: { processed: 0 },
 *   commands: {
 *     'feature/process': {
 *       schema: { id: 'string' },
 *       handle: async ({ payload, state }: CommandContext<{ processed: number }, { id: string }>) => { state.processed++ },
 *     },
 *     'feature/update': async ({ payload, signal }) => { await fetch('https://example.test', { signal }) },
 *   },
 *   periodic: { every: '5s', run: async ({ state }) => console.log(state.processed) },
 * })
 */
export function defineWorker<S = Record<string, unknown>>(
  input: WorkerDefinitionInput<S>,
): WorkerDefinition<S> {
  const name = input?.name
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new TypeError(`defineWorker: "name" must be a non-empty name of letters, digits and . _ : / - (it names the consumer group); got ${JSON.stringify(name)}`)
  }
  const where = `defineWorker("${name}")`
  if (typeof input.description !== 'string' || input.description.trim() === '') {
    throw new TypeError(`${where}: "description" must be a non-empty string saying what the worker does`)
  }
  if (typeof input.commands !== 'object' || input.commands === null) {
    throw new TypeError(`${where}: "commands" must be an object of command name → handler`)
  }
  const routes = new Map<string, ResolvedRoute<S>>()
  for (const [command, entry] of Object.entries(input.commands as Record<string, unknown>)) {
    if (command === '') throw new TypeError(`${where}: a command name must not be empty`)
    if (typeof entry === 'function') {
      routes.set(command, { handle: entry as CommandHandler<S, unknown> })
      continue
    }
    const route = entry as Partial<CommandRoute<S>> | null
    if (typeof route !== 'object' || route === null || typeof route.handle !== 'function') {
      throw new TypeError(`${where}: command "${command}" must be a function or { schema, handle } with a function "handle"`)
    }
    if (route.schema !== undefined) checkCommandSchema(route.schema, `${where}, command "${command}"`)
    routes.set(command, { handle: route.handle as CommandHandler<S, unknown>, ...(route.schema ? { schema: route.schema } : {}) })
  }
  if (routes.size === 0 && !input.periodic) {
    throw new TypeError(`${where}: give it at least one command in "commands" or a "periodic" run`)
  }
  let periodic: WorkerDefinition<S>['periodic']
  if (input.periodic) {
    const everyMs = parseDuration(input.periodic.every as string | number)
    if (everyMs === undefined || everyMs < 1) {
      throw new RangeError(`${where}: "periodic.every" must be a duration such as "500ms", "5s" or "1m"; got ${JSON.stringify(input.periodic.every)}`)
    }
    // Node runs a longer setInterval every 1 ms
    if (everyMs > MAX_TIMER_MS) {
      throw new RangeError(`${where}: "periodic.every" must be at most ${MAX_TIMER_MS} ms (about 24 days); got ${JSON.stringify(input.periodic.every)}`)
    }
    if (typeof input.periodic.run !== 'function') throw new TypeError(`${where}: "periodic.run" must be a function`)
    const slowMs = positive(where, 'periodic.slowMs', input.periodic.slowMs ?? 1000, false)
    periodic = { everyMs, slowMs, run: input.periodic.run }
  }
  if (input.sequential !== undefined && typeof input.sequential !== 'boolean') {
    throw new TypeError(`${where}: "sequential" must be true or false; got ${JSON.stringify(input.sequential)}`)
  }
  const concurrency = input.sequential ? 1 : positive(where, 'concurrency', input.concurrency ?? 16, true)
  const retry = { ...DEFAULT_COMMAND_RETRY, ...input.retry }
  for (const key of ['initialIntervalMs', 'maxIntervalMs', 'maxElapsedMs'] as const) positive(where, `retry.${key}`, retry[key], false)
  if (!Number.isInteger(retry.maxRetries) || retry.maxRetries < 0) {
    throw new RangeError(`${where}: "retry.maxRetries" must be an integer of at least 0; got ${retry.maxRetries}`)
  }
  if (!(retry.multiplier >= 1)) throw new RangeError(`${where}: "retry.multiplier" must be at least 1; got ${retry.multiplier}`)
  const replay = input.replay === undefined ? undefined : resolveReplay(where, input.replay, input.sequential === true)
  const startId = input.startId ?? '$'
  if (startId !== '$' && !/^\d+(-\d+)?$/.test(startId)) {
    throw new RangeError(`${where}: "startId" must be "$", "0" or a stream id such as "1718000000000-0"; got ${JSON.stringify(startId)}`)
  }
  return Object.freeze({
    name,
    description: input.description,
    state: (input.state ?? replay?.fresh() ?? {}) as S,
    routes,
    ...(periodic ? { periodic } : {}),
    concurrency,
    sequential: input.sequential === true,
    retry: Object.freeze(retry),
    maxDeliveries: positive(where, 'maxDeliveries', input.maxDeliveries ?? 10, true),
    startId,
    ...(replay ? { replay } : {}),
  })
}

function resolveReplay<S>(where: string, input: ReplayOptions<S>, sequential: boolean): ResolvedReplay<S> {
  if (typeof input !== 'object' || input === null || typeof input.fresh !== 'function') {
    throw new TypeError(`${where}: "replay" must be { fresh: () => state, snapshotEvery?, save?, load?, maxEntries? }`)
  }
  if (!sequential) throw new TypeError(`${where}: "replay" needs "sequential: true", so the rebuilt state follows log order`)
  const snapshotEvery = input.snapshotEvery ?? 0
  if (!Number.isInteger(snapshotEvery) || snapshotEvery < 0) {
    throw new RangeError(`${where}: "replay.snapshotEvery" must be an integer of at least 0 (0: no snapshots); got ${snapshotEvery}`)
  }
  for (const key of ['save', 'load'] as const) {
    if (input[key] !== undefined && typeof input[key] !== 'function') throw new TypeError(`${where}: "replay.${key}" must be a function`)
  }
  return {
    fresh: input.fresh,
    snapshotEvery,
    save: input.save ?? ((state) => state),
    load: input.load ?? ((saved) => saved as S),
    maxEntries: positive(where, 'replay.maxEntries', input.maxEntries ?? 1_000_000, true),
  }
}
