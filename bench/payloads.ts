import { createRequire } from 'node:module'
import type { StreamEvent } from '../src/core/event.js'

/** Payload sets: `github` (the real @octokit/webhooks-examples, cycled), `1kb` synthetic, `small` (~60 bytes). */
export const PAYLOAD_KINDS = ['github', '1kb', 'small'] as const
export type PayloadKind = (typeof PAYLOAD_KINDS)[number]

/** One GitHub example: event name, payload and repository. */
export interface GithubExample {
  readonly event: string
  readonly payload: unknown
  readonly repository: string
}

let examples: GithubExample[] | undefined

/**
 * Every example payload of @octokit/webhooks-examples (api.github.com), in a fixed order.
 *
 * @example
 * githubExamples().length // 329 with v7.6.1
 */
export function githubExamples(): readonly GithubExample[] {
  if (examples) return examples
  const defs = createRequire(import.meta.url)('@octokit/webhooks-examples') as { name: string; examples: unknown[] }[]
  examples = defs.flatMap((d) => d.examples.map((payload) => {
    const repo = (payload as { repository?: { full_name?: unknown } } | null)?.repository?.full_name
    return { event: d.name, payload, repository: typeof repo === 'string' ? repo : '' }
  }))
  return examples
}

const oneKb = Object.freeze({ action: 'synthetic', sender: { login: 'bench', id: 1 }, text: 'x'.repeat(940) })
const small = Object.freeze({ action: 'ping', n: 1 })

/**
 * N StreamEvents of the given payload kind with ids `<idPrefix><i>`: the same data for every scenario of a run,
 * with fresh ids per run so nothing dedupes. Payload objects are shared between events (cheap to hold).
 *
 * @example
 * makeEvents('github', 20_000, 'run1-') // ids run1-0 … run1-19999; `start` shifts the first index
 */
export function makeEvents(kind: PayloadKind, count: number, idPrefix: string, start = 0): StreamEvent[] {
  const timestamp = new Date().toISOString()
  const base = { tenant_id: 'bench', tool_id: 'bench-tool', timestamp, retry_count: 0 }
  const out: StreamEvent[] = new Array(count)
  const gh = kind === 'github' ? githubExamples() : []
  for (let k = 0; k < count; k++) {
    const i = start + k
    const id = `${idPrefix}${i}`
    if (kind === 'github') {
      const ex = gh[i % gh.length] as GithubExample
      out[k] = { ...base, id, event_type: `webhook.github.${ex.event}`, repository: ex.repository, payload: ex.payload }
    } else {
      out[k] = { ...base, id, event_type: 'webhook.generic.bench', repository: 'bench/repo', payload: kind === '1kb' ? oneKb : small }
    }
  }
  return out
}
