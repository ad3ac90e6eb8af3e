import type { Cluster, Redis } from 'ioredis'

/** Options of `readUnblocker`. */
export interface ReadUnblockerOptions {
  /** The client that sends the blocking XREADGROUP (a `Redis`, or a `Cluster`). */
  readonly reader: Redis | Cluster
  /** Another client of the same server(s), free while the reader blocks; it sends CLIENT UNBLOCK. */
  readonly commands: Redis | Cluster
  /** The stream the reader reads. On a Cluster its slot names the master whose reader connection blocks. */
  readonly stream: string
}

/** Ends a blocked XREADGROUP early, so a stop does not have to cut the connection under it. */
export interface ReadUnblocker {
  /**
   * Call right before each blocking read: asks the reader's connection its `CLIENT ID`, on that connection (a
   * blocked connection cannot answer), once per connection and again after it reconnects.
   */
  prepare(): Promise<void>
  /**
   * Makes the blocked read return now, with what it already has or as if its BLOCK timed out (`CLIENT UNBLOCK`).
   * Resolves true when a blocked read was unblocked, false when none was (or its connection's id is unknown).
   * While Redis is paused (CLIENT PAUSE, a failover) it resolves only after the pause.
   */
  unblock(): Promise<boolean>
}

function isCluster(redis: Redis | Cluster): redis is Cluster {
  return (redis as Cluster).isCluster === true
}

const nodeKey = (node: Redis) => `${node.options.host}:${node.options.port}`
const sameServer = (a: Redis, b: Redis) =>
  a.stream?.remoteAddress !== undefined && a.stream.remoteAddress === b.stream?.remoteAddress && a.stream.remotePort === b.stream.remotePort

/**
 * The unblocker of one source's reader. On a Redis Cluster the read of a stream goes out on the reader's
 * connection to the master that holds the stream's slot, so that is the connection whose id it keeps, and the
 * `CLIENT UNBLOCK` goes to that master.
 *
 * @example
 * const unblocker = readUnblocker({ reader, commands, stream: 'webhook_events' })
 * await unblocker.prepare()
 * const reply = reader.call('XREADGROUP', 'GROUP', group, consumer, 'BLOCK', 5000, 'STREAMS', stream, '>')
 * // … on stop:
 * await unblocker.unblock() // the read above returns now
 */
export function readUnblocker(options: ReadUnblockerOptions): ReadUnblocker {
  const { reader, commands, stream } = options
  let slot: number | undefined
  let known: { connection: Redis; socket: unknown; id: Promise<string | undefined> } | undefined

  const readerConnection = async (): Promise<Redis | undefined> => {
    if (!isCluster(reader)) return reader
    // never fails the read: without the slot (a refused command) the stop only waits for the read's BLOCK
    slot ??= await reader.call('CLUSTER', 'KEYSLOT', stream).then(Number, () => undefined)
    if (slot === undefined) return undefined
    const master = reader.slots[slot]?.[0]
    return reader.nodes('master').find((node) => nodeKey(node) === master)
  }

  return {
    async prepare() {
      const connection = await readerConnection()
      if (!connection) return
      // the same socket, connected: the id asked on it before still names it
      if (known?.connection === connection && known.socket === connection.stream && connection.status === 'ready') return
      known = { connection, socket: connection.stream, id: connection.call('CLIENT', 'ID').then(String, () => undefined) }
    },
    async unblock() {
      if (!known) return false
      const { connection } = known
      const id = await known.id
      // an id names a client on one server only: send it nowhere else (a failover or a slot move in between)
      const via = isCluster(commands) ? commands.nodes('master').find((node) => nodeKey(node) === nodeKey(connection)) : commands
      if (!id || !via || !sameServer(via, connection)) return false
      // A read that reaches Redis during a pause is postponed, not blocked, and CLIENT UNBLOCK on a postponed
      // client crashes Redis 7 ("Unknown btype in replyToBlockedClientTimedOut"). Redis holds a transaction that
      // writes for as long as it is paused, so this one unblocks only after the pause, when the postponed read has
      // become a plain blocked one. Its XTRIM removes nothing (no id is below 0-0); its key routes it to the
      // stream's master on a Cluster (a MOVED aborts the transaction).
      const replies = await via.multi().call('XTRIM', stream, 'MINID', '0').call('CLIENT', 'UNBLOCK', id).exec()
      const [err, unblocked] = replies?.[1] ?? [null, 0]
      if (err) throw err
      return Number(unblocked) === 1
    },
  }
}
