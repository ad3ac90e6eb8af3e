import { isPipelineError, PipelineError } from '../core/errors.js'
import { destinationsWithoutSecret } from '../core/destinations-without-secret.js'
import type { ToolConfig } from '../core/tool.js'
import type { ToolStore } from './tool-store.js'

/**
 * Where ToolRegistry finds tools and how often it reloads them.
 *
 * @example
 * { tools: yamlTools, store: new ToolStore({ db }), refreshMs: 2000, onError: (err) => log.warn(err) }
 */
export interface ToolRegistryOptions {
  /** Tools from code or the YAML file. A stored tool with the same id replaces one of these. @defaultValue [] */
  readonly tools?: readonly ToolConfig[]
  /** The `webhook_tools` table; without it the registry serves `tools` only. */
  readonly store?: Pick<ToolStore, 'list' | 'get'>
  /**
   * How often the whole cache is reloaded: a change made on another process shows within it. It is also how long
   * `getQueued` remembers an id the store does not have. @defaultValue 2000
   */
  readonly refreshMs?: number
  /** Called with each failed background refresh (the last good cache keeps serving). @defaultValue ignore */
  readonly onError?: (err: Error) => void
  /**
   * Called once when a stored tool's row becomes unreadable (or its reason changes): an invalid row, or a secret
   * the configured key cannot decrypt. The other tools load as usual. @defaultValue ignore
   */
  readonly onUnreadable?: (toolId: string, err: Error) => void
  /**
   * Called once per tool (again only when the list changes) whose forward destinations have no signing secret of
   * their own and would be signed with its inbound secret: a row stored by a version that did not generate one.
   * Gets the tool id and those destination ids, never a secret. @defaultValue ignore
   */
  readonly onInboundSigned?: (toolId: string, destinations: readonly string[]) => void
}

// unknown ids remembered at once; a flood of random ids must not grow memory without bound
const MAX_NEGATIVE_ENTRIES = 10_000

/**
 * Looks tools up for ingest and the pipeline from a cache of the static tools merged with the ToolStore,
 * where a stored tool overrides a static one with the same id. The whole cache is reloaded every
 * `refreshMs`, so a change made on any process takes effect everywhere within seconds (and at once on the
 * process that calls `refresh()` after its own change, as the admin API does). `get` answers from that full
 * list alone, so an id a sender made up costs no query; `getQueued` (the pipeline's, for events ingest already
 * accepted) reads an id missing from the cache from the store once, remembering unknown ids for `refreshMs`.
 * Disabled tools are returned with `enabled: false`; the caller decides what that means.
 *
 * A failed refresh keeps the last good cache and goes to `onError`. Before the first successful load,
 * `get()` rejects with an infrastructure PipelineError `TOOLS_UNAVAILABLE` (so events are held, not
 * dead-lettered as unknown), as does a cache miss while the store is unreachable.
 *
 * @example
 * const registry = new ToolRegistry({ tools: config.tools, store: new ToolStore({ db }), refreshMs: 2000 })
 * const tool = await registry.get('gh-main') // ToolConfig | undefined
 * await registry.close()
 */
export class ToolRegistry {
  private readonly staticTools: ReadonlyMap<string, ToolConfig>
  private readonly store: ToolRegistryOptions['store']
  private readonly refreshMs: number
  private readonly onError: (err: Error) => void
  private cache: Map<string, ToolConfig> | undefined
  private readonly unknown = new Map<string, number>()
  private readonly misses = new Map<string, Promise<ToolConfig | undefined>>()
  private loading: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  private lastError: Error | undefined
  private unreadableTools = new Map<string, Error>()
  private readonly onUnreadable: (toolId: string, err: Error) => void
  private readonly onInboundSigned: (toolId: string, destinations: readonly string[]) => void
  private readonly inboundSigned = new Map<string, string>()

  constructor(options: ToolRegistryOptions = {}) {
    const tools = new Map<string, ToolConfig>()
    for (const tool of options.tools ?? []) {
      if (tools.has(tool.id)) throw new RangeError(`ToolRegistry: "tools" lists tool "${tool.id}" twice; give each tool one entry`)
      tools.set(tool.id, tool)
    }
    this.staticTools = tools
    this.store = options.store
    this.refreshMs = options.refreshMs ?? 2000
    if (!Number.isInteger(this.refreshMs) || this.refreshMs < 1) {
      throw new RangeError(`ToolRegistry: "refreshMs" must be a positive integer (milliseconds); got ${options.refreshMs}`)
    }
    this.onError = options.onError ?? (() => {})
    this.onUnreadable = options.onUnreadable ?? (() => {})
    this.onInboundSigned = options.onInboundSigned ?? (() => {})
    if (!this.store) this.cache = new Map(tools)
  }

  /** The error of the last refresh while it keeps failing, for health checks; undefined once one succeeds. */
  get refreshError(): Error | undefined {
    return this.lastError
  }

  /** Stored tools whose row cannot be read, by id, with the reason; for health checks and metrics. */
  get unreadable(): ReadonlyMap<string, Error> {
    return this.unreadableTools
  }

  /**
   * The tool with this id from the full tool list, or undefined when the list (loaded at most `refreshMs` ago)
   * does not have it: an unknown id costs no database query, however many a sender makes up. While refreshes
   * fail, an id missing from the last good list rejects with `TOOLS_UNAVAILABLE` (it may have been added since).
   * Rejects with a permanent `TOOL_UNREADABLE` when its stored row cannot be read (invalid, or a secret the key
   * cannot decrypt).
   */
  async get(id: string): Promise<ToolConfig | undefined> {
    const cache = await this.loaded()
    const hit = this.cached(cache, id)
    if (hit || !this.store) return hit
    if (this.lastError) throw this.unavailable(this.lastError, `reading tool "${id}"`)
    return undefined
  }

  /**
   * Like `get`, for the tool of an event ingest already accepted (maybe on another process, moments after the
   * tool was added there): an id missing from the cache is read from the store once, and an id the store does
   * not have either is remembered as unknown for `refreshMs` (at most 10,000 of them).
   */
  async getQueued(id: string): Promise<ToolConfig | undefined> {
    const cache = await this.loaded()
    const hit = this.cached(cache, id)
    if (hit || !this.store) return hit
    const until = this.unknown.get(id)
    if (until !== undefined && until > Date.now()) return undefined
    let miss = this.misses.get(id)
    if (!miss) {
      miss = this.loadOne(id).finally(() => this.misses.delete(id))
      this.misses.set(id, miss)
    }
    return miss
  }

  private async loaded(): Promise<Map<string, ToolConfig>> {
    const cache = this.cache ?? (await this.load(), this.cache as Map<string, ToolConfig> | undefined)
    if (!cache) throw this.unavailable(this.lastError, 'loading the tool list')
    return cache
  }

  private cached(cache: Map<string, ToolConfig>, id: string): ToolConfig | undefined {
    const broken = this.unreadableTools.get(id)
    if (broken) throw this.unreadableError(id, broken)
    return cache.get(id)
  }

  /**
   * Reloads the whole cache now (the timer does this every `refreshMs`). Rejects with `TOOLS_UNAVAILABLE`
   * when the store cannot be read; the last good cache stays in use.
   *
   * @example
   * await store.upsert(tool, 'admin'); await registry.refresh() // this process sees it at once
   */
  async refresh(): Promise<void> {
    if (!this.store) return
    let stored: ToolConfig[]
    // row by row: one bad row is left out and reported, so every other change still takes effect
    const unreadable = new Map<string, Error>()
    try {
      stored = await this.store.list((id, err) => unreadable.set(id, err instanceof Error ? err : new Error(String(err))))
    } catch (err) {
      this.lastError = err as Error
      throw this.unavailable(err, 'refreshing the tool list')
    }
    const next = new Map(this.staticTools)
    for (const tool of stored) next.set(tool.id, tool)
    // a stored row overrides a static tool of the same id even when it cannot be read: no silent fallback
    for (const id of unreadable.keys()) next.delete(id)
    this.cache = next
    this.unknown.clear()
    this.lastError = undefined
    this.setUnreadable(unreadable)
    this.reportInboundSigned(next)
    // a process whose first touch is an admin change's refresh() must reload on schedule too: get() never
    // asks the store about a miss, so without the timer a tool added elsewhere would stay unknown here
    this.schedule()
  }

  private setUnreadable(unreadable: Map<string, Error>): void {
    for (const [id, err] of unreadable) {
      if (this.unreadableTools.get(id)?.message !== err.message) this.onUnreadable(id, err)
    }
    this.unreadableTools = unreadable
  }

  private reportInboundSigned(tools: ReadonlyMap<string, ToolConfig>): void {
    // a removed tool is forgotten: one added again under its id is reported like any new tool
    for (const id of this.inboundSigned.keys()) if (!tools.has(id)) this.inboundSigned.delete(id)
    for (const tool of tools.values()) {
      const destinations = tool.secret ? destinationsWithoutSecret(tool) : []
      const key = destinations.join(',')
      if (key === (this.inboundSigned.get(tool.id) ?? '')) continue
      if (destinations.length > 0) this.onInboundSigned(tool.id, destinations)
      if (key) this.inboundSigned.set(tool.id, key)
      else this.inboundSigned.delete(tool.id)
    }
  }

  private unreadableError(id: string, cause: Error): PipelineError {
    return new PipelineError('permanent', 'TOOL_UNREADABLE',
      `tool "${id}" is stored in webhook_tools but cannot be read: ${cause.message}; fix the row with ` +
      '`hookstream tools add` or the admin API (or set the HOOKSTREAM_ENCRYPTION_KEY it was saved with)', { cause })
  }

  private async load(): Promise<void> {
    this.loading ??= this.refresh().then(() => this.schedule(), () => {}).finally(() => { this.loading = undefined })
    await this.loading
  }

  private schedule(): void {
    if (this.timer || this.closing) return
    this.timer = setInterval(() => {
      if (this.loading) return
      this.loading = this.refresh().catch((err: Error) => this.onError(err)).finally(() => { this.loading = undefined })
    }, this.refreshMs)
    this.timer.unref()
  }

  private async loadOne(id: string): Promise<ToolConfig | undefined> {
    let tool: ToolConfig | undefined
    try {
      tool = await this.store!.get(id)
    } catch (err) {
      if (isPipelineError(err) && err.kind === 'infrastructure') throw this.unavailable(err, `reading tool "${id}"`)
      const cause = err instanceof Error ? err : new Error(String(err))
      this.setUnreadable(new Map([...this.unreadableTools, [id, cause]]))
      throw this.unreadableError(id, cause)
    }
    if (tool) {
      this.cache?.set(id, tool)
      return tool
    }
    if (this.unknown.size >= MAX_NEGATIVE_ENTRIES) this.unknown.clear()
    this.unknown.set(id, Date.now() + this.refreshMs)
    return undefined
  }

  private unavailable(err: unknown, what: string): PipelineError {
    // the cause's own message says what to fix (database down, a bad row, a missing decryption key)
    const reason = err instanceof Error ? err.message : String(err ?? 'unknown error')
    return new PipelineError('infrastructure', 'TOOLS_UNAVAILABLE',
      `tool registry failed ${what}: ${reason}; events wait until the tool list can be read again`, { cause: err })
  }

  /** Stops the refresh timer; the cache keeps answering. A second call returns the same promise. */
  close(): Promise<void> {
    if (!this.closing) {
      clearInterval(this.timer)
      this.timer = undefined
      this.closing = Promise.resolve()
    }
    return this.closing
  }
}
