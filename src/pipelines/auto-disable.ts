import type { Redis } from 'ioredis'
import { updateDestination } from '../core/destination-changes.js'
import { formatDuration } from '../core/duration.js'
import type { ToolRegistry } from '../db/tool-registry.js'
import type { ToolStore } from '../db/tool-store.js'
import { failingSinceKey, type StreamKeys } from '../sources/keys.js'
import { redisScript, runScript } from '../sources/redis-script.js'
import type { DeliveryEnvelope } from './delivery.js'

// the first failure's time stays until a success deletes it; returns it (the oldest failure of this run)
const FAILING_SINCE = redisScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2]))
return redis.call('GET', KEYS[1])`)

// takes the failing mark if it still holds the failure time this check read: of the checks (in this worker or any
// other) that find the same destination past its auto_disable_after, only the one that deletes the mark disables it
const CLAIM = redisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// what the failing mark holds for a while after the destination was disabled (not a time: no check acts on it), and
// how long: the longest a delivery attempt sent before the change can take (WORKER_PROCESSING_TIMEOUT's default)
const DISABLED_MARK = 'disabled'
const DISABLED_MARK_MS = 300_000

/** Options of `destinationAutoDisabler`. */
export interface AutoDisableOptions {
  readonly redis: Pick<Redis, 'call'>
  readonly keys: StreamKeys
  /**
   * Disables the destination (the service: `ToolStore.changeDestinations`, audited as `destination_auto_disabled`,
   * then a registry refresh); resolves false when it could not (a tool from the config file).
   */
  readonly disable: (toolId: string, destinationId: string, failingForMs: number) => Promise<boolean>
  /** Told each destination it disabled (e.g. `webhook_destinations_auto_disabled_total`). */
  readonly onDisabled?: (toolId: string, destinationId: string, failingForMs: number) => void
  /** Told about Redis or PostgreSQL failures of the check; the deliveries themselves are not affected. */
  readonly onError?: (err: Error) => void
}

// failures that say the destination is not taking deliveries; a rate-limit wait is not one
const isFailing = (env: DeliveryEnvelope): boolean => {
  const failure = env.forwardAttempt?.failure ?? env.failure
  if (!failure) return false
  if (env.forwardAttempt?.sent) return true
  return failure.code === 'DESTINATION_CIRCUIT_OPEN'
}

/**
 * The `auto_disable_after` rule of the delivery pipeline, fed every step result: for a destination that has it,
 * a failed attempt (or one its open breaker held back) records when the destination started failing, in Redis
 * so every worker shares it, and a delivered one clears it. A destination failing for longer than its
 * `auto_disable_after` is disabled through `disable`; its deliveries then fail with `DESTINATION_DISABLED` and
 * are dead-lettered as they come up, as Svix does. Never throws; the checks run beside the deliveries.
 *
 * @example
 * retryBackoff({ step, onStepResult: destinationAutoDisabler({ redis, keys, disable }) })
 */
export function destinationAutoDisabler(options: AutoDisableOptions): (env: DeliveryEnvelope) => void {
  const check = async (env: DeliveryEnvelope, afterMs: number, toolId: string, destinationId: string): Promise<void> => {
    const key = failingSinceKey(options.keys, toolId, destinationId)
    if (!isFailing(env)) {
      if (env.outcome === 'forwarded') await options.redis.call('DEL', key)
      return
    }
    const now = Date.now()
    const ttlMs = Math.max(2 * afterMs, afterMs + 86_400_000)
    const since = String(await runScript(options.redis, FAILING_SINCE, [key], [now, ttlMs]))
    const failingFor = now - Number(since)
    if (since === DISABLED_MARK || !(failingFor > afterMs)) return
    // deliveries fail concurrently: without the claim two of them could both disable (two audit rows)
    if (Number(await runScript(options.redis, CLAIM, [key], [since])) !== 1) return
    let disabled: boolean
    try {
      disabled = await options.disable(toolId, destinationId, failingFor)
    } catch (err) {
      // the mark goes back, so the next failure tries again instead of starting a new auto_disable_after
      await options.redis.call('SET', key, since, 'NX', 'PX', ttlMs)
      throw err
    }
    if (!disabled) return
    // attempts sent before the registry saw the change still fail after it: the tombstone keeps them from leaving
    // a failure time behind, which would disable the destination at its first failure once it is enabled again
    await options.redis.call('SET', key, DISABLED_MARK, 'PX', DISABLED_MARK_MS)
    options.onDisabled?.(toolId, destinationId, failingFor)
  }
  return (env) => {
    const d = env.destination
    const toolId = env.tool?.id
    if (!d?.autoDisableAfterMs || !toolId) return
    check(env, d.autoDisableAfterMs, toolId, d.id).catch((err: Error) => options.onError?.(err))
  }
}

/**
 * The service's `disable`: sets the destination's `enabled` to false in `webhook_tools` (audited as
 * `destination_auto_disabled` by `auto-disable`) and refreshes the registry, so this worker's next delivery to it
 * fails with `DESTINATION_DISABLED`. A tool from the config file cannot be changed: `warn` says so and it resolves
 * false.
 *
 * @example
 * destinationAutoDisabler({ redis, keys, disable: storeDisabler(store, registry, (msg, f) => logger.warn(f, msg)) })
 */
export function storeDisabler(store: Pick<ToolStore, 'changeDestinations'>, registry: Pick<ToolRegistry, 'refresh'>,
  warn: (message: string, fields: Record<string, unknown>) => void): AutoDisableOptions['disable'] {
  return async (toolId, destinationId, failingForMs) => {
    const where = `tool "${toolId}"`
    const changed = await store.changeDestinations(toolId, destinationId, 'destination_auto_disabled', 'auto-disable',
      (list) => updateDestination(list, destinationId, (d) => ({ ...d, enabled: false }), where))
    if (!changed) {
      warn(`destination "${destinationId}" of ${where} has failed for ${formatDuration(failingForMs)}, past its auto_disable_after, ` +
        'but the tool is from the config file and is not changed at run time; disable the destination there', { tool_id: toolId, destination_id: destinationId })
      return false
    }
    await registry.refresh()
    return true
  }
}
