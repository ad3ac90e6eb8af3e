/** Test helpers for CLI commands: a captured CliIO over the shared test servers, each run in its own key-space and database. */
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { CliIO, Command } from '../../src/cli/command.js'
import type { Flags } from '../../src/config/parse-flags.js'
import { createDb, type Db } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { streamKeys, type StreamKeys } from '../../src/sources/keys.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'

export interface CliWorld {
  readonly env: Record<string, string>
  readonly db: Db
  readonly redis: Redis
  readonly keys: StreamKeys
  /** Runs a command with captured output. */
  run(command: Command, args: string[], flags?: Flags): Promise<{ code: number; out: string; err: string }>
  close(): Promise<void>
}

export async function cliWorld(extraEnv: Record<string, string> = {}): Promise<CliWorld> {
  const redisUrl = (await sharedRedis()).url
  const databaseUrl = await (await sharedPostgres()).createDatabase()
  const prefix = `cli-${randomUUID()}:`
  const env = { REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, STREAM_PREFIX: prefix, ...extraEnv }
  const db = await createDb({ url: databaseUrl, poolSize: 2 })
  await migrateToLatest(db.db)
  const redis = new Redis(redisUrl)
  return {
    env, db, redis, keys: streamKeys({ prefix }),
    async run(command, args, flags = {}) {
      const out: string[] = []
      const err: string[] = []
      const io: CliIO = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env }
      const code = await command(args, flags, io)
      return { code, out: out.join('\n'), err: err.join('\n') }
    },
    async close() {
      redis.disconnect()
      await db.close()
    },
  }
}
