import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseDuration } from '../../src/core/duration.js'
import { configFromEnv, readYaml } from './manifest-helpers.js'

interface Service {
  image?: string
  build?: unknown
  command?: string[]
  environment?: Record<string, string>
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  configs?: { source: string; target: string }[]
  ports?: string[]
  stop_grace_period?: string
}
interface Compose { services: Record<string, Service>; configs?: Record<string, { content?: string }> }

const compose = readYaml<Compose>('docker-compose.yml')
const Compose = suite('docker-compose.yml')

/** The hookstream service's environment, its config file's text, and what loadConfig makes of both. */
function hookstream() {
  const svc = compose.services.hookstream
  assert.ok(svc, 'a service named hookstream')
  const env = svc.environment ?? {}
  const mount = svc.configs?.find((c) => c.target === env.HOOKSTREAM_CONFIG)
  assert.ok(mount, `HOOKSTREAM_CONFIG (${env.HOOKSTREAM_CONFIG}) is where a config is mounted`)
  const content = compose.configs?.[mount.source]?.content
  assert.type(content, 'string', `config "${mount.source}" has inline content`)
  return { svc, env, content: content as string, ...configFromEnv(env, content) }
}

Compose('runs Redis 7 with AOF on and PostgreSQL 15, each with a health check', () => {
  const { redis, postgres } = compose.services
  assert.match(redis?.image ?? '', /^redis:7\b/)
  assert.ok(redis?.command?.join(' ').includes('--appendonly yes'), 'redis-server --appendonly yes')
  assert.match(redis?.healthcheck?.test.join(' ') ?? '', /redis-cli ping/)
  assert.match(postgres?.image ?? '', /^postgres:15\b/)
  assert.match(postgres?.healthcheck?.test.join(' ') ?? '', /pg_isready/)
})

Compose('hookstream is built from this directory and starts only once Redis and PostgreSQL are healthy', () => {
  const { svc } = hookstream()
  assert.is(svc.build, '.')
  assert.equal(svc.depends_on, { redis: { condition: 'service_healthy' }, postgres: { condition: 'service_healthy' } })
  assert.match(svc.healthcheck?.test.join(' ') ?? '', /\/health\/ready/)
})

Compose('every hookstream variable is one the config reads, and they point at the compose services', () => {
  const { env, read, config } = hookstream()
  const unread = Object.keys(env).filter((name) => !read.has(name))
  assert.equal(unread, [], `variables loadConfig never reads: ${unread.join(', ')}`)
  assert.equal(config.redis, { kind: 'server', url: 'redis://redis:6379' })
  assert.is(config.database.kind, 'postgres')
  const db = new URL(config.database.kind === 'postgres' ? config.database.url : '')
  assert.equal([db.hostname, db.port, db.pathname, db.username, db.password],
    ['postgres', '5432', '/hookstream', compose.services.postgres?.environment?.POSTGRES_USER, compose.services.postgres?.environment?.POSTGRES_PASSWORD])
  assert.is(db.pathname.slice(1), compose.services.postgres?.environment?.POSTGRES_DB)
})

Compose('the mounted example config defines one valid tool', () => {
  const { config } = hookstream()
  assert.is(config.tools.length, 1)
  assert.is(config.tools[0]?.provider, 'github')
})

Compose('published ports and the health check use the ports the config resolves to; the admin API only on host loopback', () => {
  const { svc, config } = hookstream()
  const published = (svc.ports ?? []).map((p) => Number(p.split(':').pop()))
  assert.ok(config.adminToken && config.admin.addr, 'the stack runs the admin API')
  assert.equal(published.sort(), [config.http.addr.port, config.health.endpoint.port, config.admin.addr.port].sort())
  assert.equal((svc.ports ?? []).filter((p) => Number(p.split(':').pop()) === config.admin.addr?.port), [`127.0.0.1:${config.admin.addr.port}:${config.admin.addr.port}`])
  assert.match(svc.healthcheck?.test.join(' ') ?? '', new RegExp(`:${config.health.endpoint.port}/health/ready`))
})

Compose('the stop grace period outlasts the worker drain timeout', () => {
  const { svc, config } = hookstream()
  const graceMs = parseDuration(svc.stop_grace_period ?? '10s')
  assert.ok(graceMs !== undefined && graceMs > config.worker.shutdownTimeoutMs,
    `stop_grace_period ${svc.stop_grace_period} must be longer than the ${config.worker.shutdownTimeoutMs} ms drain`)
})

Compose.run()
