import type { Kysely } from 'kysely'
import type { Config } from '../config/load-config.js'
import { destinationsOf } from '../core/tool.js'
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
  })
  metrics.setToolLoadErrors(() => tools.unreadable.keys())
  warnInboundSigned(config, logger)
  return { tools, toolStore }
}

// nothing can generate a secret for a config-file destination, so one without a secret signs with its tool's forward
// secret or, lacking one, the inbound secret: a receiver holding that could sign webhooks the tool accepts as the sender's
function warnInboundSigned(config: Config, logger: Logger): void {
  for (const tool of config.tools) {
    if (tool.forwardSecret || !tool.secret) continue
    const destinations = destinationsOf(tool).filter((d) => !d.secret).map((d) => d.id)
    if (destinations.length === 0) continue
    logger.warn({ tool_id: tool.id, destinations }, `config-file tool "${tool.id}" signs its forwards to ${destinations.map((d) => `"${d}"`).join(', ')} ` +
      'with its inbound secret, so those receivers could sign webhooks this tool accepts; give each destination a ' +
      '"secret" of its own in the config file (Standard Webhooks form, 32 random bytes), or the tool a forward_secret')
  }
}
