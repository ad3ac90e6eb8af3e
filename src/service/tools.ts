import type { Kysely } from 'kysely'
import type { Config } from '../config/load-config.js'
import type { Database } from '../db/database.js'
import { ToolRegistry } from '../db/tool-registry.js'
import { ToolStore } from '../db/tool-store.js'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'

/** The tools of the service (what `openTools` returns). */
export interface ServiceTools {
  /** The configured and stored tools, refreshed in the background; closed by `shutdown`. */
  readonly tools: ToolRegistry
  /** The stored tools (the admin API writes them), encrypted with HOOKSTREAM_ENCRYPTION_KEY when set. */
  readonly toolStore: ToolStore
}

/**
 * Opens the tool registry over the configured tools and the tool store. A failed refresh keeps serving the last
 * known tools (logged as a warning); a stored tool that cannot be loaded is logged and counted in the metrics.
 *
 * @example
 * const { tools, toolStore } = openTools({ config, db: ctx.db.db, logger, metrics })
 */
export function openTools(options: { readonly config: Config; readonly db: Kysely<Database>; readonly logger: Logger; readonly metrics: Metrics }): ServiceTools {
  const { config, db, logger, metrics } = options
  const toolStore = new ToolStore({ db, ...(config.encryptionKey ? { encryptionKey: config.encryptionKey } : {}),
    ...(config.encryptionKeyPrevious ? { encryptionKeyPrevious: config.encryptionKeyPrevious } : {}) })
  const tools = new ToolRegistry({
    tools: config.tools, store: toolStore,
    onError: (err) => logger.warn({ err }, 'tool refresh failed; serving the last known tools'),
    onUnreadable: (toolId, err) => logger.error({ err, toolId }, 'a stored tool cannot be loaded; its webhooks answer 503 until the row is fixed'),
    onInboundSigned: (toolId, destinations) => logger.warn({ tool_id: toolId, destinations },
      `stored tool "${toolId}" signs its forwards to ${destinations.map((d) => `"${d}"`).join(', ')} with its inbound secret (saved by an older ` +
      'version without a forward signing secret), so those receivers could sign webhooks this tool accepts; give it one with ' +
      `\`hookstream tools rotate-secret ${toolId} --forward\` (or POST /admin/tools/${toolId}/forward-secret/rotate) and hand the new secret to the receivers`),
  })
  metrics.setToolLoadErrors(() => tools.unreadable.keys())
  return { tools, toolStore }
}
