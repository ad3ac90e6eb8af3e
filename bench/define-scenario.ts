import type { Kysely } from 'kysely'
import type { Redis } from 'ioredis'
import type pg from 'pg'
import type { Observable } from 'rxjs'
import type { StreamMessage } from '../src/core/envelope.js'
import type { StreamEvent } from '../src/core/event.js'
import type { Database } from '../src/db/database.js'
import type { StreamKeys } from '../src/sources/keys.js'
import type { PayloadKind } from './payloads.js'

/** What a scenario gets for one timed run: servers, a fresh stream and key-space, a clean table, the data. */
export interface ScenarioContext {
  /** Shared ioredis command connection (duplicate() it for blocking reads). */
  readonly redis: Redis
  readonly redisUrl: string
  /** Raw pg pool (50 connections) on the bench database, for hand-written baselines. */
  readonly pool: pg.Pool
  /** Kysely over the same database (migrated: `webhook_events` exists and was TRUNCATEd before this run). */
  readonly db: Kysely<Database>
  readonly databaseUrl: string
  /** N: events (or requests) this run must process. */
  readonly events: number
  readonly payload: PayloadKind
  /** `--duration`: seconds of load for time-bound scenarios (latency); undefined: the scenario's own default. */
  readonly durationSeconds?: number
  /** Key-space of this run: `keys.stream` is a fresh, empty stream; every key under `keys` is deleted after the run. */
  readonly keys: StreamKeys
  /** Prefix every other Redis key of this run should start with (e.g. a BullMQ prefix), so it is cleaned up. */
  readonly keyPrefix: string
  /** Consumer group to read `keys.stream` with. */
  readonly group: string
  /** This run's N events: the chosen payloads cycled, each with a fresh id (same data for every scenario). */
  data(): readonly StreamEvent[]
  /** XADDs this run's events into `keys.stream` (StreamClient.addMany, 1,000 per pipeline). Untimed in setup(). */
  preload(): Promise<void>
  /**
   * Drains this run's pre-loaded stream through `fromRedisStream` (group `group`) and your `chain`, until
   * `events` messages were settled and acked. Without a chain each message is settled at once.
   */
  drain(options?: {
    readonly chain?: (source: Observable<StreamMessage>) => Observable<unknown>
    /** fromRedisStream's batchSize. @defaultValue 500 */
    readonly batchSize?: number
  }): Promise<{ readonly settled: number }>
  /** Reports progress (events done so far) for the progress bar; cheap, call as often as you like. */
  progress(done: number): void
  /** Per-run state a scenario's setup() hands to run() and teardown(). */
  state: Record<string, unknown>
}

/** What run() reports. The harness times run() itself (wall clock and process.cpuUsage). */
export interface ScenarioResult {
  /** Events (or requests) processed. The figure is events / seconds unless `rate` is given. */
  readonly events: number
  /** Override the measured wall time (e.g. the load generator's own duration), in seconds. */
  readonly seconds?: number
  /** Override the figure (in the scenario's unit). */
  readonly rate?: number
  /** Override Node CPU µs per event (e.g. measured in a child process). */
  readonly cpuUsPerEvent?: number
  /** Extra numbers shown in the table's notes column and stored in the JSON (p50Ms, p99Ms, peakRssMb, …). */
  readonly extra?: Readonly<Record<string, number | string>>
}

/** A benchmark: a named, repeatable run on pre-loaded data, compared with its baseline from the same invocation. */
export interface Scenario {
  /** Unique kebab-case name, used by `--scenario`. */
  readonly name: string
  /** One line for the table. */
  readonly description: string
  /** Name(s) of the baseline(s) this scenario's figure is divided by (the first gives the table's ratio). */
  readonly baseline?: string | readonly string[]
  /** Ratio to the (first) baseline this scenario should reach, e.g. 0.8; the table says whether it did. */
  readonly targetRatio?: number
  /** True for the reference loops in bench/baselines. */
  readonly isBaseline?: boolean
  /** Unit of the figure. @defaultValue "events/s" */
  readonly unit?: string
  /** Default N when `--events` is not given. @defaultValue 20000 */
  readonly events?: number
  /** Payload when `--payload` is not given. @defaultValue "github" */
  readonly payload?: PayloadKind
  /** Default repetitions when `--repeat` is not given. @defaultValue 3 */
  readonly repeat?: number
  /** Untimed preparation for one run (preload the stream, start servers). */
  setup?(ctx: ScenarioContext): Promise<void>
  /** The timed part. */
  run(ctx: ScenarioContext): Promise<ScenarioResult>
  /** Untimed cleanup for one run (close what setup opened). Runs even when run() failed. */
  teardown?(ctx: ScenarioContext): Promise<void>
}

/**
 * Declares a scenario. Export it (or an array of them) as the default export of a file and pass the file with
 * `npm run bench -- --file my-scenario.ts`, or add it to bench/scenarios/index.ts.
 *
 * @example
 * export default defineScenario({
 *   name: 'my-drain', baseline: 'raw-drain',
 *   description: 'fromRedisStream + my operator',
 *   setup: (ctx) => ctx.preload(),
 *   async run(ctx) { … return { events: ctx.events } },
 * })
 */
export function defineScenario(scenario: Scenario): Scenario {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(scenario.name ?? '')) {
    throw new RangeError(`defineScenario: "name" must be kebab-case letters, digits and "-"; got ${JSON.stringify(scenario.name)}`)
  }
  if (typeof scenario.run !== 'function') throw new TypeError(`defineScenario "${scenario.name}": "run" must be a function`)
  for (const key of ['events', 'repeat'] as const) {
    const v = scenario[key]
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
      throw new RangeError(`defineScenario "${scenario.name}": "${key}" must be an integer of at least 1; got ${v}`)
    }
  }
  return Object.freeze({ ...scenario })
}

/** The names a scenario's ratio is computed against. */
export function baselinesOf(scenario: Scenario): readonly string[] {
  const b = scenario.baseline
  return b === undefined ? [] : typeof b === 'string' ? [b] : b
}
