import jsonata from 'jsonata'
import type { StreamEvent } from '../../src/core/event.js'
import { parseTool, type ToolConfig } from '../../src/core/tool.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { StreamClient } from '../../src/sources/stream-client.js'
import { defineScenario, type Scenario, type ScenarioContext } from '../define-scenario.js'
import { githubExamples } from '../payloads.js'
import { runWebhookPipeline } from './run-webhook-pipeline.js'

/** A realistic rule set over GitHub push payloads: 10 output fields, paths, functions and a string replace. */
export const PUSH_RULES: Readonly<Record<string, string>> = Object.freeze({
  ref: 'ref',
  branch: '$replace(ref, "refs/heads/", "")',
  repo: 'repository.full_name',
  private: 'repository.private',
  pusher: 'pusher.name',
  sender: 'sender.login',
  commit_count: '$count(commits)',
  head_message: 'head_commit.message',
  authors: '$distinct(commits.author.name)',
  files_changed: '$count(commits.added) + $count(commits.modified) + $count(commits.removed)',
})

// the 7 push examples of @octokit/webhooks-examples (6.5–7.7 KB), cycled, fresh ids
function pushEvents(ctx: ScenarioContext): StreamEvent[] {
  const pushes = githubExamples().filter((e) => e.event === 'push')
  const timestamp = new Date().toISOString()
  return Array.from({ length: ctx.events }, (_, i) => {
    const ex = pushes[i % pushes.length]!
    return { id: `${ctx.keyPrefix}p${i}`, event_type: 'webhook.github.push', tool_id: 'bench-tool', tenant_id: 'bench', timestamp, retry_count: 0, repository: ex.repository, payload: ex.payload }
  })
}

async function preloadPushes(ctx: ScenarioContext): Promise<void> {
  const client = new StreamClient({ redis: ctx.redis, stream: ctx.keys.stream })
  const events = pushEvents(ctx)
  for (let i = 0; i < events.length; i += 1000) await client.addMany(events.slice(i, i + 1000))
}

function pushPipeline(name: string, description: string, tool: ToolConfig, baseline?: readonly string[], targetRatio?: number): Scenario {
  return defineScenario({
    name,
    description,
    ...(baseline ? { baseline } : {}),
    ...(targetRatio ? { targetRatio } : {}),
    events: 10_000,
    setup: preloadPushes,
    async run(ctx) {
      let transformed = 0
      const settled = await runWebhookPipeline(ctx, {
        name, tool, batchSize: 500, telemetry: { metrics: createMetrics() },
        onSettled: (env) => { if (env.transformed !== undefined) transformed++ },
      })
      if (tool.processingMode === 'transform_and_store' && transformed !== ctx.events) throw new Error(`${name}: ${transformed} transformed of ${ctx.events}`)
      return { events: settled }
    },
  })
}

const STORE_TOOL = parseTool({ id: 'bench-tool', provider: 'github', secret: 'bench-secret', tenant_id: 'bench', processing_mode: 'store' })

/** Baseline of the transform pair: store-only over the same push payloads. */
export const storePush = pushPipeline('store-push',
  'webhookPipeline, store-only, metrics on, batchSize 500, over the GitHub push examples (baseline of transform)',
  STORE_TOOL)

// the rules evaluated as transform did before it had a budget: on the main thread, compiled once, results as plain JSON
async function evaluateInline(rules: readonly (readonly [string, jsonata.Expression])[], payload: unknown): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const [field, expression] of rules) {
    const value: unknown = await expression.evaluate(payload)
    if (value !== undefined) out[field] = JSON.parse(JSON.stringify(value))
  }
  return out
}

/**
 * Baseline of the transform budget: store-only over the same pushes, each event's 10 rules evaluated in-thread by
 * plain JSONata once it is settled (no worker pool, no depth hook, no deadline), as transform ran before it had a
 * budget. Its results are not stored, so `transform`'s ratio to it is an upper bound of the budget's overhead.
 */
export const transformInline = defineScenario({
  name: 'transform-inline',
  description: 'store-only over the same pushes + the 10 JSONata rules evaluated on the main thread without pool or hooks (baseline of transform\'s budget)',
  events: 10_000,
  setup: preloadPushes,
  async run(ctx) {
    const rules = Object.entries(PUSH_RULES).map(([field, text]) => [field, jsonata(text)] as const)
    const results: Promise<Record<string, unknown>>[] = []
    const settled = await runWebhookPipeline(ctx, {
      name: 'transform-inline', tool: STORE_TOOL, batchSize: 500, telemetry: { metrics: createMetrics() },
      onSettled: (env) => { results.push(evaluateInline(rules, env.message.event.payload)) },
    })
    const transformed = (await Promise.all(results)).filter((r) => typeof r.ref === 'string').length
    if (transformed !== ctx.events) throw new Error(`transform-inline: ${transformed} transformed of ${ctx.events}`)
    return { events: settled }
  },
})

/** Scenario (7): transform_and_store with a 10-field JSONata rule set over the same push payloads. */
export const transformPush = pushPipeline('transform',
  'webhookPipeline, transform_and_store with 10 JSONata rules (ref, branch, repo, pusher, commit count, head message, authors, …) over GitHub push payloads',
  parseTool({ id: 'bench-tool', provider: 'github', secret: 'bench-secret', tenant_id: 'bench', processing_mode: 'transform_and_store', transform: PUSH_RULES }),
  ['transform-inline', 'store-push'], 0.85)
