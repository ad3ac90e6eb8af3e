import type { ServerResponse } from 'node:http'
import { clientKey } from './connection-guard.js'

/** Bytes one request holds of an InflightBudget; given back when its response closes. */
export interface InflightReservation {
  /** Takes `bytes` more for this request; false (and nothing taken) when the budget cannot spare them. */
  take(bytes: number): boolean
  /**
   * What refused the last `take`: the whole budget, this request's client's share or its tool's share; undefined
   * while nothing was refused.
   */
  readonly refusedBy: 'budget' | 'client' | 'tool' | undefined
}

/** Options of `InflightBudget`. */
export interface InflightBudgetOptions {
  /**
   * Bytes the requests of one client (its address as `clientKey` groups it: an IPv6 /64 is one client) may hold at
   * once. @defaultValue a quarter of `limitBytes`
   */
  readonly perClientBytes?: number
  /** Bytes the requests to one tool may hold at once. @defaultValue half of `limitBytes` */
  readonly perToolBytes?: number
}

/**
 * The process-wide budget of request body bytes held in memory at once (INGEST_MAX_INFLIGHT_BYTES), so that many
 * large uploads cannot take the process's memory: ingest reserves a request's declared Content-Length (or, for
 * a chunked body, each chunk as it arrives) before it reads the body, and answers 503 when the budget cannot
 * spare it. The last eighth of the budget is kept for bodies of at most a sixteenth of it (ordinary webhooks),
 * so large uploads alone never take all of it. One client (address) holds at most `perClientBytes` of it and the
 * requests to one tool at most `perToolBytes`, so uploads that declare a length and then send nothing, from one
 * address or to one tool, cannot shut the door for every other sender and tenant.
 *
 * @example
 * const budget = new InflightBudget(64 * 1024 * 1024)
 * const held = budget.reserveFor(res, tool.id) // given back when the response closes
 * if (!held.take(declaredLength)) return busy(held.refusedBy)
 */
export class InflightBudget {
  /** Bytes all requests hold now. */
  get usedBytes(): number { return this.used }
  /** Bytes one client may hold at once. */
  readonly perClientBytes: number
  /** Bytes the requests to one tool may hold at once. */
  readonly perToolBytes: number
  private used = 0
  private readonly smallBytes: number
  private readonly largeCeiling: number
  // only clients and tools that hold bytes now: as many entries as requests in flight at most
  private readonly byClient = new Map<string, number>()
  private readonly byTool = new Map<string, number>()

  /** @param limitBytes - bytes held at most, an integer of at least 16 */
  constructor(readonly limitBytes: number, options: InflightBudgetOptions = {}) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 16) {
      throw new RangeError(`InflightBudget: "limitBytes" must be an integer of at least 16; got ${limitBytes}`)
    }
    this.smallBytes = Math.floor(limitBytes / 16)
    this.largeCeiling = limitBytes - Math.floor(limitBytes / 8)
    this.perClientBytes = share('perClientBytes', options.perClientBytes, Math.floor(limitBytes / 4), limitBytes)
    this.perToolBytes = share('perToolBytes', options.perToolBytes, Math.floor(limitBytes / 2), limitBytes)
  }

  /**
   * A reservation for one request to `toolId`, given back when `res` closes (answered, failed or the socket went
   * away). Its client is the address of `res`'s socket.
   */
  reserveFor(res: ServerResponse, toolId = ''): InflightReservation {
    const client = clientKey(res.socket?.remoteAddress)
    let held = 0
    let refusedBy: InflightReservation['refusedBy']
    // a client may be gone before its body is reserved (it left during the tool lookup): 'close' will not fire again
    let closed = res.closed || res.destroyed
    if (!closed) {
      res.once('close', () => {
        closed = true
        this.used -= held
        give(this.byClient, client, held)
        give(this.byTool, toolId, held)
        held = 0
      })
    }
    return {
      get refusedBy() { return refusedBy },
      take: (bytes) => {
        // after close nothing would give the bytes back
        if (closed) return false
        const ceiling = held + bytes > this.smallBytes ? this.largeCeiling : this.limitBytes
        refusedBy = this.used + bytes > ceiling ? 'budget'
          : (this.byClient.get(client) ?? 0) + bytes > this.perClientBytes ? 'client'
            : (this.byTool.get(toolId) ?? 0) + bytes > this.perToolBytes ? 'tool' : undefined
        if (refusedBy !== undefined) return false
        held += bytes
        this.used += bytes
        this.byClient.set(client, (this.byClient.get(client) ?? 0) + bytes)
        this.byTool.set(toolId, (this.byTool.get(toolId) ?? 0) + bytes)
        return true
      },
    }
  }
}

function share(name: string, value: number | undefined, fallback: number, limitBytes: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1 || value > limitBytes) {
    throw new RangeError(`InflightBudget: "${name}" must be an integer from 1 to "limitBytes" (${limitBytes}); got ${value}`)
  }
  return value
}

function give(holders: Map<string, number>, key: string, bytes: number): void {
  const left = (holders.get(key) ?? 0) - bytes
  if (left > 0) holders.set(key, left)
  else holders.delete(key)
}

/**
 * The budget ingest uses for `maxBodyBytes` bodies: `limitBytes` in all, a quarter of it per client and half per
 * tool, each at least `maxBodyBytes` so that one body of the largest size is always admitted on its own.
 *
 * @example
 * const budget = ingestBudget(64 * 1024 * 1024, 10 * 1024 * 1024) // 16 MiB per client, 32 MiB per tool
 */
export function ingestBudget(limitBytes: number, maxBodyBytes: number): InflightBudget {
  return new InflightBudget(limitBytes, {
    perClientBytes: Math.min(limitBytes, Math.max(Math.floor(limitBytes / 4), maxBodyBytes)),
    perToolBytes: Math.min(limitBytes, Math.max(Math.floor(limitBytes / 2), maxBodyBytes)),
  })
}
