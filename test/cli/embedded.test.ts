import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac, randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { pathToFileURL } from 'node:url'
import { freePort } from '../helpers/servers.js'
import { eventually } from '../helpers/events.js'
import { withTimeLimit } from '../helpers/time-limit.js'

test('with no REDIS_URL and no DATABASE_URL, `npm start` runs on an embedded redis-server and PGlite under ./.hookstream', withTimeLimit(180_000, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'hookstream-embedded-'))
  const [http, health, admin] = [await freePort(), await freePort(), await freePort()]
  const token = 'embedded-admin-token-0123456789'
  const env: Record<string, string | undefined> = { ...process.env, HTTP_ADDR: `127.0.0.1:${http}`, HEALTH_ENDPOINT: `127.0.0.1:${health}`,
    ADMIN_ADDR: `127.0.0.1:${admin}`, ADMIN_TOKEN: token, LOG_LEVEL: 'warn', WORKER_CONSUMER_NAME: 'embedded-1' }
  delete env.REDIS_URL
  delete env.DATABASE_URL
  const yaml = join(cwd, 'hookstream.yaml')
  await import('node:fs').then((fs) => fs.writeFileSync(yaml, 'tools:\n  - { id: gh, provider: github, secret: s3cret-value }\n'))
  // the service runs in its own empty directory, so tsx is loaded by path rather than resolved from there
  const tsx = pathToFileURL(join(process.cwd(), 'node_modules', 'tsx', 'dist', 'loader.mjs')).href
  const child = spawn(process.execPath, ['--import', tsx, join(process.cwd(), 'src/cli/main.ts'), 'run', '--config', yaml],
    { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { out += d })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    await eventually('ready', async () => {
      if (child.exitCode !== null) throw new Error(`hookstream run exited early (${child.exitCode}):\n${out}`)
      return (await fetch(`http://127.0.0.1:${health}/health/ready`).catch(() => undefined))?.ok === true
    }, 60_000)
    assert.match(out, /started an embedded redis-server at redis:\/\/127\.0\.0\.1:\d+/)
    assert.match(out, /embedded PostgreSQL \(PGlite\) in \.\/\.hookstream\/pgdata/)
    assert.ok(existsSync(join(cwd, '.hookstream', 'redis')) && existsSync(join(cwd, '.hookstream', 'pgdata')))
    const body = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'acme/api' } })
    const delivery = randomUUID()
    const res = await fetch(`http://127.0.0.1:${http}/webhooks/gh`, { method: 'POST', body, headers: {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', 's3cret-value').update(body).digest('hex')}` } })
    assert.is(res.status, 202)
    // the row is in PGlite, which only the service process can open: ask it through the admin API
    let fate: { event?: { state?: string; stored?: { repository?: string } | null } } = {}
    await eventually('stored', async () => {
      const r = await fetch(`http://127.0.0.1:${admin}/admin/events/${delivery}`, { headers: { authorization: `Bearer ${token}` } })
      fate = r.ok ? await r.json() as typeof fate : {}
      return Boolean(fate.event?.stored)
    }, 20_000)
    assert.is(fate.event?.stored?.repository, 'acme/api')
    assert.is(fate.event?.state, 'stored')
  } finally {
    child.kill('SIGTERM')
  }
  assert.is(await exited, 0, out.slice(-2000))
  rmSync(cwd, { recursive: true, force: true })
}))

test.run()
