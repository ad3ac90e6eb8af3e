/**
 * Child process of the backlog-memory scenario: drains the pre-loaded backlog through fromRedisStream + settle
 * in a fresh process, so its RSS is the consumer's own. Prints `progress <n>` and one `result <json>` line.
 */
import { Redis } from 'ioredis'
import { drainSource } from './drain-source.js'

const input = JSON.parse(process.argv[2] ?? '{}') as { redisUrl: string; stream: string; group: string; events: number; batchSize: number }
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024)
const redis = new Redis(input.redisUrl, { maxRetriesPerRequest: null })
const samples: { pct: number; rssMb: number; heapMb: number }[] = [{ pct: 0, rssMb: mb(process.memoryUsage.rss()), heapMb: mb(process.memoryUsage().heapUsed) }]
const step = Math.max(1, Math.floor(input.events / 10))
const cpu0 = process.cpuUsage()
const t0 = performance.now()
const { settled } = await drainSource({
  redis, stream: input.stream, group: input.group, events: input.events, batchSize: input.batchSize,
  onProgress: (done) => {
    if (done % step !== 0) return
    samples.push({ pct: Math.round((done / input.events) * 100), rssMb: mb(process.memoryUsage.rss()), heapMb: mb(process.memoryUsage().heapUsed) })
    console.log(`progress ${done}`)
  },
})
const seconds = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
redis.disconnect()
console.log(`result ${JSON.stringify({ settled, seconds, cpuUs: cpu.user + cpu.system, samples, maxRssMb: mb(process.resourceUsage().maxRSS * 1024) })}`)
