// Run by command-crash.test.ts in its own process: a command app whose worker "jobs" ends the process (exit code
// 70) on a "job" command with `crash: true`, as a handler that crashes its process does; any other job waits 50 ms
// (so it is still running when a job read with it crashes the process), then counts itself in the hash
// `<stream>:done` under its `n`. Environment: REDIS_URL, COMMAND_STREAM, CONSUMER, MAX_DELIVERIES, CLAIM_IDLE_MS.
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { createApp } from '../../src/commands/command-app.js'
import { defineWorker } from '../../src/commands/command-worker.js'

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`crashing-command-child: set ${name}`)
  return value
}
const stream = env('COMMAND_STREAM')
const redis = new Redis(env('REDIS_URL'), { maxRetriesPerRequest: null })
const app = createApp({ redis, stream, consumer: env('CONSUMER'), blockMs: 200, claimIdleMs: Number(env('CLAIM_IDLE_MS')), drainTimeoutMs: 2000 })
await app.register(defineWorker({
  name: 'jobs', description: 'runs jobs; one of them crashes the process', startId: '0', concurrency: 8,
  maxDeliveries: Number(env('MAX_DELIVERIES')),
  commands: {
    job: async ({ payload }) => {
      const { n, crash } = payload as { n: number; crash?: boolean }
      if (crash) process.exit(70)
      await sleep(50)
      await redis.hincrby(`${stream}:done`, String(n), 1)
    },
  },
}))
await app.start()
process.once('SIGTERM', () => void app.stop().finally(() => redis.disconnect()))
