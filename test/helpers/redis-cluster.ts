/**
 * A throwaway Redis Cluster for tests: `masters` redis-servers with `--cluster-enabled yes` on free loopback
 * ports (the cluster bus on its own free port), joined with `redis-cli --cluster create … --cluster-replicas 0`.
 */
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'
import { startRedis, type TestRedis } from './servers.js'

/** A running test cluster. */
export interface TestRedisCluster {
  /** `host:port` of every master, as REDIS_CLUSTER_NODES takes them. */
  readonly nodes: readonly string[]
  readonly servers: readonly TestRedis[]
  /** A connected ioredis Cluster client (yours to quit). */
  client(): Promise<Cluster>
  /** The `host:port` of the master that serves `key`. */
  masterOf(key: string): Promise<string>
  stop(): Promise<void>
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    proc.stdout.on('data', (d) => { out += String(d) })
    proc.stderr.on('data', (d) => { out += String(d) })
    proc.once('error', reject)
    proc.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`test harness: ${cmd} ${args.join(' ')} exited ${code}: ${out}`))))
  })
}

/**
 * Starts a Redis Cluster of `masters` (default 3) masters, no replicas, and waits until every node reports
 * `cluster_state:ok`.
 *
 * @example
 * const cluster = await startRedisCluster(); const redis = await cluster.client(); … ; await cluster.stop()
 */
export async function startRedisCluster(options: { masters?: number } = {}): Promise<TestRedisCluster> {
  const masters = options.masters ?? 3
  const servers: TestRedis[] = []
  try {
    for (let i = 0; i < masters; i++) {
      // the cluster bus port is picked with the server's port, afresh when a start meets a taken one
      servers.push(await startRedis({ extraPorts: 1, args: ([busPort]) => ['--cluster-enabled', 'yes', '--cluster-port', String(busPort),
        '--cluster-node-timeout', '5000', '--appendonly', 'no'] }))
    }
    const nodes = servers.map((s) => `127.0.0.1:${s.port}`)
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'])
    const deadline = Date.now() + 20_000
    for (const s of servers) {
      const probe = new Redis(s.url)
      try {
        while (!/cluster_state:ok/.test(String(await probe.call('CLUSTER', 'INFO')))) {
          if (Date.now() > deadline) throw new Error(`test harness: cluster node ${s.port} did not reach cluster_state:ok within 20 s`)
          await sleep(100)
        }
      } finally { probe.disconnect() }
    }
    const client = async () => {
      const c = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { redisOptions: { maxRetriesPerRequest: null } })
      await new Promise<void>((resolve, reject) => { c.once('ready', () => resolve()); c.once('error', reject) })
      return c
    }
    return {
      nodes, servers, client,
      async masterOf(key) {
        const probe = new Redis(servers[0]!.url)
        try {
          const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', key))
          const ranges = (await probe.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][]
          const range = ranges.find(([from, to]) => slot >= from && slot <= to)
          return range ? `${range[2][0]}:${range[2][1]}` : 'unassigned'
        } finally { probe.disconnect() }
      },
      async stop() { await Promise.all(servers.map((s) => s.kill())) },
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill()))
    throw err
  }
}
