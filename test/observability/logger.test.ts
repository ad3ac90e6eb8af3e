import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Writable } from 'node:stream'
import { createLogger, eventLogger, maskUrlCredentials, REDACTED } from '../../src/observability/logger.js'

function capture(level = 'info') {
  const lines: string[] = []
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done() },
  })
  return { logger: createLogger({ level, destination }), lines, text: () => lines.join('\n') }
}

const Logger = suite('logger')

Logger('no secret value reaches the output in any of the supported forms', () => {
  const { logger, lines, text } = capture()
  const secrets = Array.from({ length: 24 }, (_, i) => `S3CRET-${i}-${Math.random().toString(36).slice(2)}`)
  const s = (i: number) => secrets[i] as string
  logger.info({ secret: s(0), password: s(1), token: s(2), authorization: s(3) }, 'top level')
  logger.info({ tool: { id: 'gh-main', secret: s(4) }, db: { password: s(5) }, auth: { token: s(6) } }, 'one level down')
  logger.info({ config: { tool: { secret: s(7) } } }, 'two levels down')
  logger.info({ tools: [{ id: 'a', secret: s(8) }, { id: 'b', secret: s(9) }] }, 'tool list')
  logger.info({
    headers: {
      authorization: `Bearer ${s(10)}`, 'x-hub-signature-256': `sha256=${s(11)}`, 'x-hub-signature': `sha1=${s(12)}`,
      'x-gitlab-token': s(13), 'webhook-signature': `v1,${s(14)}`, cookie: `sid=${s(15)}`,
    },
  }, 'request headers')
  logger.info({ req: { headers: { authorization: s(16), 'x-gitlab-token': s(17) } } }, 'nested headers')
  logger.info({ url: `postgres://app:${s(18)}@db:5432/hooks`, config: { databaseUrl: `postgres://app:${s(19)}@db/x` } }, 'urls')
  logger.info(`connecting to redis://:${s(20)}@cache:6379`)
  logger.error({ err: new Error(`cannot reach postgres://app:${s(21)}@db/hooks`) }, 'startup failed')
  logger.child({ databaseUrl: `postgresql://u:${s(22)}@h/d` }).info({ note: `see postgres://u:${s(23)}@h/d` }, 'child')
  assert.is(lines.length, 10)
  const out = text()
  for (const secret of secrets) assert.not.ok(out.includes(secret), `secret ${secret} leaked:\n${out}`)
  assert.ok(out.split(REDACTED).length - 1 >= 17, 'redacted values are censored, not dropped')
  const urls = JSON.parse(lines[6] as string) as { url: string; config: { databaseUrl: string } }
  assert.is(urls.url, 'postgres://app:****@db:5432/hooks')
  assert.is(urls.config.databaseUrl, 'postgres://app:****@db/x')
  const headers = JSON.parse(lines[4] as string) as { headers: Record<string, string> }
  assert.is(headers.headers['x-hub-signature-256'], REDACTED)
})

Logger('lines are JSON with level, time and message; fields without secrets pass unchanged', () => {
  const { logger, lines } = capture('debug')
  logger.debug({ tool_id: 'gh-main', count: 3 }, 'flushed')
  const line = JSON.parse(lines[0] as string) as Record<string, unknown>
  assert.is(line.msg, 'flushed')
  assert.is(line.level, 20)
  assert.is(line.tool_id, 'gh-main')
  assert.is(line.count, 3)
  assert.type(line.time, 'number')
})

Logger('eventLogger adds the event id and trace id to every line', () => {
  const { logger, lines } = capture()
  eventLogger(logger, { eventId: 'evt-1', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' }).warn('dead-lettered')
  eventLogger(logger, { eventId: 'evt-2', traceId: undefined }).warn('dead-lettered')
  const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.is(a?.event_id, 'evt-1')
  assert.is(a?.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736')
  assert.is(b?.event_id, 'evt-2')
  assert.not.ok('trace_id' in (b ?? {}))
})

Logger('maskUrlCredentials masks the password, a token user name and query values, and leaves plain URLs as written', () => {
  assert.is(maskUrlCredentials('postgres://app:pw@db:5432/x?sslmode=require'), 'postgres://app:****@db:5432/x?sslmode=****')
  assert.is(maskUrlCredentials('POST https://hooks.test/in?token=tok-abc&v=2 failed'), 'POST https://hooks.test/in?token=****&v=**** failed')
  assert.is(maskUrlCredentials('https://ghp_tok@hooks.test/in'), 'https://****@hooks.test/in')
  assert.is(maskUrlCredentials('redis://:pw@cache:6379 and https://h/x'), 'redis://:****@cache:6379 and https://h/x')
  assert.is(maskUrlCredentials('postgres://app@db/x'), 'postgres://****@db/x', 'a user name alone may be a token')
})

Logger('a URL password inside an AggregateError, a cause, a nested error or a format argument is masked', () => {
  const { logger, lines, text } = capture()
  const secrets = Array.from({ length: 9 }, (_, i) => `PW${i}x${Math.random().toString(36).slice(2)}`)
  const url = (i: number) => `https://bot:${secrets[i] as string}@hooks.example.test/in`
  logger.error({ err: new AggregateError([new Error(`cannot reach ${url(0)}`), Object.assign(new Error('refused'), { url: url(1) })], 'all failed') }, 'aggregate')
  logger.error({ err: new Error('forward failed', { cause: new Error(`POST ${url(2)} reset`) }) }, 'cause')
  logger.error({ err: new Error('forward failed', { cause: { url: url(3) } }) }, 'plain cause')
  logger.error({ err: Object.assign(new Error('outer'), { inner: new Error(`see ${url(4)}`) }) }, 'error-valued field')
  logger.error({ error: Object.assign(new Error('under another key'), { endpoint: url(5) }) }, 'other key')
  logger.error({ failures: [new AggregateError([new Error(url(6))], 'batch')] }, 'errors in a list')
  logger.error('failed: %s', new Error(`at ${url(7)}`))
  logger.error({}, 'failed: %o', { target: url(8) })
  assert.is(lines.length, 8)
  const out = text()
  for (const secret of secrets) assert.not.ok(out.includes(secret), `secret ${secret} leaked:\n${out}`)
  const aggregate = JSON.parse(lines[0] as string) as { err: { message: string; aggregateErrors: Array<{ message: string; url?: string }> } }
  assert.is(aggregate.err.aggregateErrors[0]?.message, 'cannot reach https://bot:****@hooks.example.test/in', 'inner errors are kept, masked')
  assert.is(aggregate.err.aggregateErrors[1]?.url, 'https://bot:****@hooks.example.test/in')
  const other = JSON.parse(lines[4] as string) as { error: { message: string; endpoint: string } }
  assert.is(other.error.message, 'under another key', 'an error under any key is serialised, not dropped')
  assert.is(other.error.endpoint, 'https://bot:****@hooks.example.test/in')
})

Logger('an unknown level is a configuration error naming LOG_LEVEL', () => {
  try {
    createLogger({ level: 'verbose' })
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace or silent; got "verbose"/)
  }
})

Logger.run()
