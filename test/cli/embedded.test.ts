import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServiceProcess } from '../helpers/service-process.js'
import { eventually } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'

test('with no REDIS_URL and no DATABASE_URL, `npm start` runs on an embedded redis-server and PGlite under ./.hookstream', withTimeLimit(180_000, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'hookstream-embedded-'))
  const token = 'embedded-admin-token-0123456789'
  // startServiceProcess picks the three ports and starts again on fresh ones when one was taken before the bind
  const svc = await startServiceProcess({ REDIS_URL: undefined, DATABASE_URL: undefined, ADMIN_TOKEN: token, WORKER_CONSUMER_NAME: 'embedded-1' },
    'tools:\n  - { id: gh, provider: github, secret: s3cret-value }\n', [], { cwd })
  try {
    const out = svc.output()
    assert.match(out, /started an embedded redis-server at redis:\/\/127\.0\.0\.1:\d+/)
    assert.match(out, /embedded PostgreSQL \(PGlite\) in \.\/\.hookstream\/pgdata/)
    assert.ok(existsSync(join(cwd, '.hookstream', 'redis')) && existsSync(join(cwd, '.hookstream', 'pgdata')))
    const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'acme/api' } })
    const delivery = randomUUID()
    const res = await fetch(`${svc.ingestUrl}/webhooks/gh`, { method: 'POST', body, headers: {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', 's3cret-value').update(body).digest('hex')}` } })
    assert.is(res.status, 202)
    // the row is in PGlite, which only the service process can open: ask it through the admin API
    let fate: { event?: { state?: string; stored?: { repository?: string } | null } } = {}
    await eventually('stored', async () => {
      const r = await fetch(`${svc.adminUrl}/admin/events/${delivery}`, { headers: { authorization: `Bearer ${token}` } })
      fate = r.ok ? await r.json() as typeof fate : {}
      return Boolean(fate.event?.stored)
    }, 20_000)
    assert.is(fate.event?.stored?.repository, 'acme/api')
    assert.is(fate.event?.state, 'stored')
  } finally {
    svc.child.kill('SIGTERM')
  }
  assert.is(await svc.exited, 0, svc.output().slice(-2000))
  rmSync(cwd, { recursive: true, force: true })
}))

test.run()
