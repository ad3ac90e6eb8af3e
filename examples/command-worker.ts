/**
 * Command workers: two small workers on one command log. Run it with a Redis at hand:
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/command-worker.ts
 *
 * The test suite runs `runExample()` against its own Redis (test/commands/command-example.test.ts).
 */
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import { createApp, defineWorker, PipelineError, type CommandApp, type CommandContext } from 'hookstream'

interface Feature { readonly id: string; readonly title: string }
interface FeatureState { readonly features: Map<string, Feature>; updates: number }
type FeatureCtx = CommandContext<FeatureState, Feature>

/** A worker that keeps features in its state; a fresh one per call, so each app has its own state. */
export function featuresWorker() {
  return defineWorker({
    name: 'features',
    description: 'Stores new features and applies updates to them',
    state: { features: new Map(), updates: 0 } as FeatureState,
    commands: {
      'feature/process': {
        schema: { id: 'string', title: 'string' },
        handle: async ({ payload, state }: FeatureCtx) => {
          state.features.set(payload.id, payload)
        },
      },
      'feature/update': {
        schema: { id: 'string', title: 'string' },
        handle: async ({ payload, state }: FeatureCtx) => {
          if (!state.features.has(payload.id)) {
            // permanent: retrying will not make the feature appear, so it goes to the DLQ at once
            throw new PipelineError('permanent', 'FEATURE_UNKNOWN', `feature "${payload.id}" does not exist; process it first`)
          }
          state.features.set(payload.id, payload)
          state.updates += 1
        },
      },
    },
  })
}

/** A worker that counts every feature command and reports on a timer. */
export function auditWorker(report: (line: string) => void) {
  return defineWorker({
    name: 'audit',
    description: 'Counts feature commands and reports the count every 100ms',
    state: { seen: 0 },
    commands: {
      'feature/process': ({ state }) => { state.seen += 1 },
      'feature/update': ({ state }) => { state.seen += 1 },
    },
    periodic: { every: '100ms', run: ({ state }) => report(`audit: ${state.seen} feature commands so far`) },
  })
}

/**
 * Starts both workers on `stream`, executes a few commands, waits until they are handled, stops, and returns
 * what happened.
 */
export async function runExample(redis: Redis, options: { stream?: string; report?: (line: string) => void } = {}) {
  const report = options.report ?? ((line: string) => console.log(line))
  const features = featuresWorker()
  const app: CommandApp = createApp({ redis, stream: options.stream ?? 'example:commands', consumer: 'example' })
  await app.register(features, auditWorker(report))
  await app.start()
  try {
    await app.execute('feature/process', { id: 'f-1', title: 'Dark mode' })
    await app.execute('feature/process', { id: 'f-2', title: 'Export to CSV' })
    await app.execute('feature/update', { id: 'f-1', title: 'Dark mode (beta)' })
    await app.execute('feature/update', { id: 'f-9', title: 'Nobody processed me' })
    // wait until both workers settled all four commands
    const deadline = Date.now() + 10_000
    while (app.info().some((w) => w.handled + w.failed + w.skipped < 4) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  } finally {
    await app.stop()
  }
  for (const w of app.info()) {
    report(`${w.name}: handled ${w.handled}, dead-lettered ${w.failed}, last id ${w.lastProcessedId}`)
  }
  return { info: app.info(), features: [...features.state.features.values()], dlqStream: app.dlqStream }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
  runExample(redis)
    .then(({ features }) => console.log('features:', features))
    .finally(() => redis.disconnect())
}
