/**
 * Starts a throwaway Redis (AOF on) and PostgreSQL on loopback with the test harness, for smoke.sh, and prints
 * `REDIS_URL=…` and `DATABASE_URL=…` lines, then `READY`. The servers stop when this process gets SIGTERM or
 * SIGINT, or when the process that started it (argv[2], a pid) is gone, so a killed smoke run leaks nothing.
 *
 * @example
 * node --import tsx test/container/smoke-servers.ts $$ > servers.env &
 */
import { startPostgres, startRedis } from '../helpers/servers.js'

const parent = Number(process.argv[2] ?? process.ppid)
const redis = await startRedis({ appendonly: true })
const postgres = await startPostgres()
const databaseUrl = await postgres.createDatabase('hookstream_smoke')
process.stdout.write(`REDIS_URL=${redis.url}\nDATABASE_URL=${databaseUrl}\nREADY\n`)

// the harness stops both servers in its exit hook; SIGTERM/SIGINT already end the process through it
setInterval(() => {
  try {
    process.kill(parent, 0)
  } catch {
    process.exit(0)
  }
}, 1000)
