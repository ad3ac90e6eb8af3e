import { defineScenario } from '../define-scenario.js'
import { runChild } from '../run-child.js'

const LIMIT_MB = 256
// Node 24's V8 sizes the young generation from the heap limit (up to 3 × 64 MB of semi-spaces on a large box),
// which alone puts RSS near the limit while the heap in use stays at 20-90 MB; the child runs with the
// semi-space an operator would set for a small container (NODE_OPTIONS=--max-semi-space-size=16), so the figure
// is what the source holds, and says so in its notes
const SEMI_SPACE_MB = 16

/**
 * Scenario (5), backlog memory on the source side: a backlog of 1,000,000 small events drained through
 * fromRedisStream + settle in a child process; peak RSS must stay ≤ 256 MB and flat (samples every 10%).
 */
export const backlogMemory = defineScenario({
  name: 'backlog-memory',
  description: `backlog drained by fromRedisStream (batchSize 500) + settle, in its own process (--max-semi-space-size=${SEMI_SPACE_MB}): RSS`,
  events: 1_000_000,
  payload: 'small',
  repeat: 1,
  setup: (ctx) => ctx.preload(),
  async run(ctx) {
    const out = await runChild<{ settled: number; seconds: number; cpuUs: number; maxRssMb: number; samples: { pct: number; rssMb: number; heapMb: number }[] }>(
      new URL('./backlog-drain-child.ts', import.meta.url),
      { redisUrl: ctx.redisUrl, stream: ctx.keys.stream, group: ctx.group, events: ctx.events, batchSize: 500 },
      ctx.progress, undefined, [`--max-semi-space-size=${SEMI_SPACE_MB}`],
    )
    const rss = out.samples.map((s) => s.rssMb)
    const after10 = rss.slice(1)
    return {
      events: out.settled,
      seconds: out.seconds,
      cpuUsPerEvent: out.cpuUs / out.settled,
      extra: {
        peakRssMb: out.maxRssMb,
        maxSemiSpaceMb: SEMI_SPACE_MB,
        rssLimitMb: LIMIT_MB,
        // how much RSS grew between 10% and 100% of progress: near 0 means flat
        rssGrowth10to100Pct: after10.length > 1 ? Math.round(((after10[after10.length - 1] as number) / (after10[0] as number) - 1) * 100) : 0,
        rssSamplesMb: out.samples.map((s) => `${s.pct}%:${s.rssMb}`).join(' '),
        // the JS heap in use at the same points: RSS far above it is buffers, code and the allocator's free pages
        heapUsedSamplesMb: out.samples.map((s) => `${s.pct}%:${s.heapMb}`).join(' '),
        verdict: out.maxRssMb <= LIMIT_MB ? 'ok' : 'OVER LIMIT',
      },
    }
  },
})
