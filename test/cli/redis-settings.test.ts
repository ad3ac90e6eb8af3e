import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { openContext } from '../../src/cli/context.js'
import type { CliIO } from '../../src/cli/command.js'
import { sharedPostgres, startRedis, type TestRedis } from '../helpers/servers.js'

const io = (env: Record<string, string>): CliIO => ({ stdout: () => {}, stderr: () => {}, env })
const dir = mkdtempSync(join(tmpdir(), 'hookstream-redis-tls-'))

interface Ctx { redis: TestRedis; tls: TestRedis; tlsPort: number; databaseUrl: string }
const Settings = suite<Ctx>('REDIS_PASSWORD, REDIS_DB, REDIS_TLS_ENABLED', {} as Ctx)
Settings.before(async (ctx) => {
  ctx.databaseUrl = await (await sharedPostgres()).createDatabase()
  ctx.redis = await startRedis()
  const admin = new Redis(ctx.redis.url)
  await admin.config('SET', 'requirepass', 'correct-horse-battery')
  admin.disconnect()
  // a throwaway CA-less self-signed certificate for 127.0.0.1; clients trust it through NODE_EXTRA_CA_CERTS
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  // the TLS port is picked with the server's port, afresh when a start meets a taken one
  ctx.tls = await startRedis({ extraPorts: 1, args: ([tlsPort]) => ['--tls-port', String(tlsPort), '--tls-cert-file', join(dir, 'cert.pem'),
    '--tls-key-file', join(dir, 'key.pem'), '--tls-ca-cert-file', join(dir, 'cert.pem'), '--tls-auth-clients', 'no'] })
  ctx.tlsPort = ctx.tls.extraPorts[0]!
})
Settings.after(async (ctx) => {
  await ctx.redis?.stop()
  await ctx.tls?.stop()
  rmSync(dir, { recursive: true, force: true })
})

Settings('REDIS_PASSWORD opens a password-protected server the URL has no password for; without it every command is refused', async ({ redis, databaseUrl }) => {
  const env = { REDIS_URL: redis.url, DATABASE_URL: databaseUrl }
  let refused = false
  try {
    // ioredis's ready check meets NOAUTH and the connection closes before openContext returns
    await (await openContext({}, io(env))).close()
  } catch {
    refused = true
  }
  assert.ok(refused, 'without REDIS_PASSWORD the server refuses the connection')
  const ctx = await openContext({}, io({ ...env, REDIS_PASSWORD: 'correct-horse-battery' }))
  try {
    assert.is(await ctx.redis.ping(), 'PONG')
  } finally {
    await ctx.close()
  }
})

Settings('REDIS_DB selects the database: a key written through the context is in that database and not in 0', async ({ redis, databaseUrl }) => {
  const key = `db-test-${randomUUID()}`
  const ctx = await openContext({}, io({ REDIS_URL: redis.url, DATABASE_URL: databaseUrl, REDIS_PASSWORD: 'correct-horse-battery', REDIS_DB: '5' }))
  try {
    await ctx.redis.set(key, 'here')
  } finally {
    await ctx.close()
  }
  const probe = new Redis(redis.url, { password: 'correct-horse-battery' })
  try {
    assert.is(await probe.get(key), null)
    await probe.select(5)
    assert.is(await probe.get(key), 'here')
  } finally {
    probe.disconnect()
  }
})

Settings('REDIS_TLS_ENABLED dials a redis:// URL with TLS: hookstream stream info works against the TLS-only port', async ({ tlsPort, databaseUrl }) => {
  const run = (extra: Record<string, string>) => new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'stream', 'info', '--json'], {
      cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${tlsPort}`, DATABASE_URL: databaseUrl, STREAM_PREFIX: `tls-${randomUUID()}:`,
        NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'), ...extra },
    })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { out += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, out }) })
  })
  const ok = await run({ REDIS_TLS_ENABLED: 'true' })
  assert.is(ok.code, 0, ok.out)
  assert.is(JSON.parse(ok.out).length, 0)
  const plain = await run({ REDIS_TLS_ENABLED: 'false' })
  assert.is.not(plain.code, 0, 'a plain connection to the TLS port must fail')
})

Settings.run()
