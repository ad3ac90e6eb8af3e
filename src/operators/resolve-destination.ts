import { map } from 'rxjs'
import type { Destination } from '../core/destination.js'
import { isDone, type Envelope } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import { destinationsOf, type ToolConfig } from '../core/tool.js'
import { DESTINATION_FIELD } from '../sources/enqueue-deliveries.js'
import type { BatchStage } from './batch-step.js'

/** An envelope of the delivery pipeline once its destination is known. */
export type WithDestination = { readonly destination?: Destination }

/**
 * For an entry of the delivery stream: finds the destination it names (field `destination`) among its tool's
 * destinations and adds it as `destination`. A destination removed since the fan-out fails permanently with
 * `DESTINATION_REMOVED`, a disabled one with `DESTINATION_DISABLED` (both are dead-lettered and recorded
 * `failed`). Envelopes already decided pass through.
 *
 * @example
 * batches$.pipe(extractToolConfig({ tools }), resolveDestination(), retryBackoff({ step: deliverStep({ sink, pool }) }))
 */
export function resolveDestination<E extends Envelope & { readonly tool?: ToolConfig }>(): BatchStage<E, E & WithDestination> {
  const resolve = (env: E): E & WithDestination => {
    const tool = env.tool
    if (isDone(env) || !tool) return env
    const id = env.message.fields[DESTINATION_FIELD] ?? ''
    // the forward_url shorthand (`default`) is among them: a replay may send to it through this pipeline
    const destination = destinationsOf(tool).find((d) => d.id === id)
    const where = `delivery of event "${env.message.event.id}" to destination "${id.slice(0, 64)}" of tool "${tool.id}"`
    if (!destination) {
      return { ...env, failure: new PipelineError('permanent', 'DESTINATION_REMOVED',
        `${where}: the tool has no such destination any more (removed after the event was fanned out); add it again and retry the event from the DLQ`) }
    }
    if (!destination.enabled) {
      return { ...env, destination, failure: new PipelineError('permanent', 'DESTINATION_DISABLED',
        `${where}: the destination is disabled; enable it (hookstream destinations enable) and retry the event from the DLQ`) }
    }
    return { ...env, destination }
  }
  return map((envs) => envs.map(resolve))
}
