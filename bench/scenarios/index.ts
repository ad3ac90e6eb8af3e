import { batchedConsumer1, batchedConsumer2 } from '../baselines/batched-consumer.js'
import { bullmq10, bullmq50 } from '../baselines/bullmq.js'
import { rawDrain, rawDrainDecode } from '../baselines/raw-drain.js'
import { rawInsert } from '../baselines/raw-insert.js'
import { seedsInFlight10, seedsSequential } from '../baselines/seeds-per-message.js'
import type { Scenario } from '../define-scenario.js'
import { backlogMemory } from './backlog-memory.js'
import { bareHttp, ingest } from './ingest.js'
import { sourceDrain100, sourceDrain500 } from './source-drain.js'

/**
 * Every built-in scenario and baseline, in run order: within a repetition they run in this order, so a
 * scenario and its baseline alternate (A B A B …) across repetitions.
 *
 * The webhook-pipeline scenarios (store-only end to end, latency under load, forward, transform,
 * metrics/tracing overhead) go here, next to the baselines they compare with, once src/pipelines/webhook.ts
 * exists: the store-only one compares with batched-consumer-1, seeds-10-in-flight and bullmq-50.
 */
export const SCENARIOS: readonly Scenario[] = [
  rawDrain, rawDrainDecode, sourceDrain500, sourceDrain100,
  bareHttp, ingest,
  rawInsert, seedsSequential, seedsInFlight10, bullmq10, bullmq50, batchedConsumer1, batchedConsumer2,
  backlogMemory,
]
