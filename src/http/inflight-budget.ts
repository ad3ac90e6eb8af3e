import type { ServerResponse } from 'node:http'

/** Bytes one request holds of an InflightBudget; given back when its response closes. */
export interface InflightReservation {
  /** Takes `bytes` more for this request; false (and nothing taken) when the budget cannot spare them. */
  take(bytes: number): boolean
}

/**
 * The process-wide budget of request body bytes held in memory at once (INGEST_MAX_INFLIGHT_BYTES), so that many
 * large uploads cannot take the process's memory: ingest reserves a request's declared Content-Length (or, for
 * a chunked body, each chunk as it arrives) before it reads the body, and answers 503 when the budget cannot
 * spare it. The last eighth of the budget is kept for bodies of at most a sixteenth of it (ordinary webhooks),
 * so large uploads alone never take all of it.
 *
 * @example
 * const budget = new InflightBudget(64 * 1024 * 1024)
 * const held = budget.reserveFor(res) // given back when the response closes
 * if (!held.take(declaredLength)) return busy()
 */
export class InflightBudget {
  /** Bytes all requests hold now. */
  get usedBytes(): number { return this.used }
  private used = 0
  private readonly smallBytes: number
  private readonly largeCeiling: number

  /** @param limitBytes - bytes held at most, an integer of at least 16 */
  constructor(readonly limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 16) {
      throw new RangeError(`InflightBudget: "limitBytes" must be an integer of at least 16; got ${limitBytes}`)
    }
    this.smallBytes = Math.floor(limitBytes / 16)
    this.largeCeiling = limitBytes - Math.floor(limitBytes / 8)
  }

  /** A reservation for one request, given back when `res` closes (answered, failed or the socket went away). */
  reserveFor(res: ServerResponse): InflightReservation {
    let held = 0
    // a client may be gone before its body is reserved (it left during the tool lookup): 'close' will not fire again
    let closed = res.closed || res.destroyed
    if (!closed) {
      res.once('close', () => {
        closed = true
        this.used -= held
        held = 0
      })
    }
    return {
      take: (bytes) => {
        const ceiling = held + bytes > this.smallBytes ? this.largeCeiling : this.limitBytes
        // after close nothing would give the bytes back
        if (closed || this.used + bytes > ceiling) return false
        held += bytes
        this.used += bytes
        return true
      },
    }
  }
}
