import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { eventually } from '../helpers/events.js'
import { startReceiver } from '../helpers/pipeline.js'
import { runCli } from '../helpers/cli-process.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { githubDelivery, openSpace, SECRET, toolsYaml, type Space } from '../reliability/fixture.js'

// Promises of the README that only the whole service keeps: each test runs `hookstream run` as a process and
// looks at what an operator sees (HTTP answers, rows, the receiver's requests).
interface Ctx { s: Space; svc?: ServiceProcess }
const Service = suite<Ctx>('hookstream run: documented behaviour end to end', {} as Ctx)
Service.before.each(async (ctx) => { ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase()) })
Service.after.each((ctx) => release(ctx, {
  svc: async (svc) => { svc.child.kill('SIGKILL'); await svc.exited },
  s: (s) => s.close(),
}))

async function post(svc: ServiceProcess, toolId: string): Promise<{ status: number; code?: string; retryAfter: string | null }> {
  const d = githubDelivery(toolId, randomUUID())
  const res = await fetch(`${svc.ingestUrl}${d.path}`, { method: 'POST', body: d.body, headers: d.headers })
  const json = await res.json().catch(() => ({})) as { error?: { code: string } }
  return { status: res.status, ...(json.error ? { code: json.error.code } : {}), retryAfter: res.headers.get('retry-after') }
}

Service('without FORWARD_ALLOW_PRIVATE a loopback forward destination gets nothing and the event is dead-lettered as FORWARD_URL_FORBIDDEN', withTimeLimit(180_000, async (ctx) => {
  const receiver = await startReceiver()
  try {
    ctx.svc = await startServiceProcess({ ...ctx.s.env, WORKER_BLOCK_TIMEOUT: '300ms' }, toolsYaml({ fwd: receiver.url }))
    assert.is((await post(ctx.svc, 'fwd')).status, 202)
    await eventually('dead-lettered', async () => (await ctx.s.rows('webhook_dlq')) === 1, 60_000)
    const dlq = await ctx.s.db.db.selectFrom('webhook_dlq').select(['error_code', 'error_class']).executeTakeFirstOrThrow()
    assert.equal(dlq, { error_code: 'FORWARD_URL_FORBIDDEN', error_class: 'permanent' })
    assert.is(receiver.requests.length, 0, 'no request reached the loopback receiver')
  } finally {
    await receiver.close()
  }
}))

Service('INGEST_RATE_LIMIT through hookstream run: the burst is accepted, the rest answered 429 RATE_LIMITED with Retry-After', withTimeLimit(180_000, async (ctx) => {
  ctx.svc = await startServiceProcess({ ...ctx.s.env, INGEST_RATE_LIMIT: '1', INGEST_RATE_BURST: '3' }, toolsYaml({ limited: undefined, other: undefined }))
  const answers = []
  for (let i = 0; i < 6; i++) answers.push(await post(ctx.svc, 'limited'))
  // 1 token/s: a slow box may refill one token while the six requests run, never more than a few
  const accepted = answers.filter((a) => a.status === 202).length
  assert.ok(accepted >= 3 && accepted <= 5, JSON.stringify(answers))
  const refused = answers.filter((a) => a.status !== 202)
  assert.ok(refused.length > 0 && refused.every((a) => a.status === 429 && a.code === 'RATE_LIMITED' && Number(a.retryAfter) >= 1), JSON.stringify(refused))
  assert.is((await post(ctx.svc, 'other')).status, 202, "another tool's bucket is untouched")
}))

Service('a tool added by `hookstream tools add` in another process is served by the running service after its reload (every 2 s)', withTimeLimit(180_000, async (ctx) => {
  ctx.svc = await startServiceProcess(ctx.s.env, toolsYaml({ first: undefined }))
  const before = await post(ctx.svc, 'late')
  assert.equal([before.status, before.code], [404, 'UNKNOWN_TOOL'])
  const added = await runCli(['tools', 'add', 'late', '--provider', 'github', '--secret', SECRET], ctx.s.env)
  assert.is(added.code, 0, added.stderr)
  const addedAt = Date.now()
  await eventually('the new tool is accepted', async () => (await post(ctx.svc!, 'late')).status === 202, 30_000)
  // the reload period is 2 s; on a loaded machine the request loop above adds its own delay
  assert.ok(Date.now() - addedAt < 15_000, `served ${Date.now() - addedAt} ms after the add`)
}))

Service('the admin API refuses a body over 1 MiB with 413 BODY_TOO_LARGE', withTimeLimit(180_000, async (ctx) => {
  const token = 'admin-token-0123456789abcdef'
  ctx.svc = await startServiceProcess({ ...ctx.s.env, ADMIN_TOKEN: token }, toolsYaml({ first: undefined }))
  const res = await fetch(`${ctx.svc.adminUrl}/admin/tools/big`, {
    method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'big', provider: 'github', secret: SECRET, padding: 'x'.repeat(2 * 1024 * 1024) }),
  }).catch((err: Error) => err)
  assert.ok(!(res instanceof Error), `the client got an answer, not ${String(res)}`)
  const answer = res as Response
  assert.is(answer.status, 413)
  assert.is(((await answer.json()) as { error: { code: string } }).error.code, 'BODY_TOO_LARGE')
}))

Service.run()
