import { batchedConsumer1, batchedConsumer2 } from '../baselines/batched-consumer.js'
import { bullmq10, bullmq50 } from '../baselines/bullmq.js'
import { minimalIngest } from '../baselines/minimal-ingest.js'
import { rawDrain, rawDrainDecode } from '../baselines/raw-drain.js'
import { rawInsert } from '../baselines/raw-insert.js'
import { seedsInFlight10, seedsSequential } from '../baselines/seeds-per-message.js'
import type { Scenario } from '../define-scenario.js'
import { backlogMemory } from './backlog-memory.js'
import { bareHttp, ingest } from './ingest.js'
import { forward10, forward50, forwardGuarded50 } from './forward.js'
import { fanOut3 } from './fan-out.js'
import { latency1000, latency3000 } from './latency.js'
import {
  pipelineStore100, pipelineStore100if200, pipelineStore500, pipelineStore500if1000, storeMetrics, storeTelemetryOff, storeTracing, storeWhilePruning,
} from './pipeline-store.js'
import { sourceDrain100, sourceDrain500, sourceDrainBatches } from './source-drain.js'
import { storePush, transformInline, transformPush } from './transform.js'

/**
 * Every built-in scenario and baseline, in run order: within a repetition they run in this order, so a
 * scenario and its baseline alternate (A B A B …) across repetitions.
 *
 * A new scenario goes here, next to the baselines it compares with.
 */
export const SCENARIOS: readonly Scenario[] = [
  rawDrain, rawDrainDecode, sourceDrain500, sourceDrainBatches, sourceDrain100,
  bareHttp, minimalIngest, ingest,
  rawInsert, seedsSequential, seedsInFlight10, bullmq10, bullmq50, batchedConsumer1, batchedConsumer2,
  pipelineStore500, pipelineStore100, pipelineStore500if1000, pipelineStore100if200, storeWhilePruning,
  forward10, forward50, forwardGuarded50, fanOut3,
  storePush, transformInline, transformPush,
  storeTelemetryOff, storeMetrics, storeTracing,
  latency1000, latency3000,
  backlogMemory,
]
