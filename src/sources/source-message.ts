import type { StreamMessage } from '../core/envelope.js'
import { PipelineError } from '../core/errors.js'
import type { StreamEvent } from '../core/event.js'
import { decodeEntry, isEntryV2 } from '../core/stream-entry.js'

/** What a source does when one of its messages is settled or released; one per subscription, shared by its messages. */
export interface MessageOwner {
  /** The message is done: queue its XACK and free its credit. */
  settled(streamId: string): void
  /** The message goes back for redelivery without an ack: free its credit and make it claimable. */
  released(streamId: string): void
}

interface Decoded { readonly event: StreamEvent; readonly decodeError: PipelineError | undefined }

/**
 * A message read from a stream: the entry's fields, its ack handle and the event, decoded on first use (a
 * consumer that only needs the raw fields, such as the command workers, never pays for JSON.parse and validation
 * of a payload it does not read). One object per entry, whose methods live on the prototype: the source's
 * per-entry cost in allocations is this object and the fields record. `event` and `decodeError` are getters,
 * so a spread copy (`{ ...msg }`) does not carry them; wrap a message rather than copy it.
 *
 * @example
 * const msg = new SourceMessage('webhook_events', '1718000000000-0', { event: '{…}' }, 1, owner)
 * msg.event.id // decoded now
 * msg.settle() // owner.settled('1718000000000-0'), once
 */
export class SourceMessage implements StreamMessage {
  /** When this process read the entry (ms since epoch). */
  readonly readAtMs = Date.now()
  /** W3C traceparent stored with the entry, when there was one. */
  declare readonly traceparent?: string
  private decoded: Decoded | undefined = undefined
  private done = false

  constructor(
    readonly stream: string,
    readonly streamId: string,
    readonly fields: Readonly<Record<string, string>>,
    readonly deliveryCount: number,
    private readonly owner: MessageOwner,
  ) {
    if (fields.traceparent) this.traceparent = fields.traceparent
  }

  /** The decoded event; a placeholder when the entry cannot be decoded (then `decodeError` is set). */
  get event(): StreamEvent { return this.decode().event }

  /** Why the entry could not be decoded, or undefined. */
  get decodeError(): PipelineError | undefined { return this.decode().decodeError }

  /** Marks the entry done (its XACK is batched by the source); once, and not after `nack`. */
  settle(): void {
    if (this.done) return
    this.done = true
    this.owner.settled(this.streamId)
  }

  /** Releases the entry for redelivery without acking it; once, and not after `settle`. */
  nack(): void {
    if (this.done) return
    this.done = true
    this.owner.released(this.streamId)
  }

  private decode(): Decoded {
    if (this.decoded) return this.decoded
    const where = `stream ${this.stream}, entry ${this.streamId}`
    try {
      this.decoded = { event: decodeEntry(this.fields, where), decodeError: undefined }
    } catch (err) {
      const decodeError = err instanceof PipelineError ? err
        : new PipelineError('permanent', 'UNDECODABLE_ENTRY', `${where}: ${(err as Error).message}`)
      this.decoded = { event: placeholder(this.streamId, this.fields), decodeError }
    }
    return this.decoded
  }
}

// the event of an entry that cannot be decoded: whatever header fields could be read, under a marked id
function placeholder(streamId: string, record: Readonly<Record<string, string>>): StreamEvent {
  let partial: Record<string, unknown> = isEntryV2(record) ? record : {}
  try {
    const raw = record.event
    const parsed: unknown = raw === undefined ? undefined : JSON.parse(raw)
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) partial = parsed as Record<string, unknown>
  } catch { /* garbled JSON: keep the placeholder fields */ }
  const text = (v: unknown, fallback: string) => (typeof v === 'string' && v ? v : fallback)
  return {
    id: `undecodable:${streamId}`,
    event_type: text(partial.event_type, 'undecodable'),
    repository: text(partial.repository, ''),
    tenant_id: text(partial.tenant_id, ''),
    tool_id: text(partial.tool_id, ''),
    payload: null,
    timestamp: new Date().toISOString(),
    retry_count: 0,
  }
}
