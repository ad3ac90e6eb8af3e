import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { sharedPostgres, sharedRedis } from './servers.js'
import { startServiceProcess, type ServiceProcess } from './service-process.js'
import { silentListener } from './silent-listener.js'

test('when something else listens on the ingest port picked for the service, it is started again on a free one', async () => {
  const squatter = await silentListener()
  const env = { REDIS_URL: (await sharedRedis()).url, DATABASE_URL: await (await sharedPostgres()).createDatabase(),
    STREAM_PREFIX: `svc-retry-${randomUUID()}:` }
  let svc: ServiceProcess | undefined
  try {
    svc = await startServiceProcess(env, 'tools:\n  - { id: gh, provider: github, secret: s3cret-value }\n', [], { firstHttpPort: squatter.port })
    assert.is.not(new URL(svc.ingestUrl).port, String(squatter.port))
    // the service answers on its ingest port (the squatter never answers anything)
    const res = await fetch(`${svc.ingestUrl}/webhooks/no-such-tool`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })
    assert.is(res.status, 404)
    assert.type(((await res.json()) as { error?: { code?: string } }).error?.code, 'string')
  } finally {
    svc?.child.kill('SIGTERM')
    if (svc) await svc.exited
    await squatter.close()
  }
})

test.run()
