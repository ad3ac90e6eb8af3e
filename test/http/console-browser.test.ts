import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHmac } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import { seedDlq } from '../db/dlq-seed.js'
import { eventually } from '../helpers/events.js'
import { release } from '../helpers/release.js'
import { sharedPostgres, sharedRedis } from '../helpers/servers.js'
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js'
import { withTimeLimit } from '../helpers/time-limit.js'
import { startReceiver, type Receiver } from '../helpers/pipeline.js'
import { FORWARD_SECRET, githubDelivery, openSpace, SECRET, toolsYaml, type Space } from '../reliability/fixture.js'

// The web console in Debian's chromium (CHROMIUM_PATH, default /usr/bin/chromium), driven by playwright-core,
// against `hookstream run` itself: real Redis, PostgreSQL, worker and admin listener on loopback.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SHOTS = new URL('../../test-output/console/', import.meta.url)
const TOKEN = 'console-token-0123456789abcdef'

interface Ctx { s: Space; rx: Receiver; down: Receiver; svc: ServiceProcess; browser: Browser; page: Page; problems: string[]; requests: string[] }
const Console = suite<Ctx>('the web console in chromium', {} as Ctx)

Console.before(async (ctx) => {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install Debian's package (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH`)
  mkdirSync(SHOTS, { recursive: true })
  ctx.s = await openSpace((await sharedRedis()).url, await (await sharedPostgres()).createDatabase())
  // gh-fan delivers to a receiver on loopback (allowed by FORWARD_ALLOW_PRIVATE), for the replay tests
  // gh-down's receiver answers 500: two failures in a row open its breaker, which stays open for the test
  ctx.rx = await startReceiver()
  ctx.down = await startReceiver(() => 500)
  ctx.svc = await startServiceProcess({ ...ctx.s.env, ADMIN_TOKEN: TOKEN, FORWARD_ALLOW_PRIVATE: '127.0.0.1/32', FORWARD_BREAKER_FAILURES: '2', FORWARD_BREAKER_COOL_DOWN: '10m',
    REPLAY_CONFIRM_OVER: '1' },
    toolsYaml({ 'gh-yaml': undefined }) +
    `  - { id: gh-fan, provider: github, secret: ${SECRET}, tenant_id: acme, forward_secret: "${FORWARD_SECRET}", destinations: [{ id: rx, url: "${ctx.rx.url}" }] }\n` +
    `  - { id: gh-down, provider: github, secret: ${SECRET}, tenant_id: acme, forward_secret: "${FORWARD_SECRET}", destinations: [{ id: down, url: "${ctx.down.url}", retry_policy: { max_retries: 5, initial_interval: 200ms, max_interval: 1s } }] }\n`)
  ctx.browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    // root in a container has no user namespaces for the sandbox; everything else goes to a dead proxy, so the
    // browser reaches loopback (which bypasses proxies) and nothing else
    args: ['--no-sandbox', '--proxy-server=127.0.0.1:9', '--disable-background-networking', '--disable-component-update', '--no-first-run',
      '--disable-sync', '--disable-default-apps', '--disable-domain-reliability', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'],
  })
  ctx.page = await ctx.browser.newPage({ viewport: { width: 1280, height: 900 } })
  ctx.problems = []
  ctx.requests = []
  // the one 401 is the test's deliberate wrong token at the login form
  ctx.page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !/status of 401/.test(m.text())) ctx.problems.push(`${m.type()}: ${m.text()}`)
  })
  ctx.page.on('pageerror', (err) => ctx.problems.push(`page error: ${err.message}`))
  ctx.page.on('request', (r) => ctx.requests.push(r.url()))
})
Console.after((ctx) => release(ctx, {
  browser: (b) => b.close(),
  svc: async (svc) => { svc.child.kill('SIGTERM'); await svc.exited },
  rx: (rx) => rx.close(),
  down: (down) => down.close(),
  s: (s) => s.close(),
}))

const shot = (page: Page, name: string) => page.screenshot({ path: new URL(`${name}.png`, SHOTS).pathname, fullPage: true })

async function dlqStatus(s: Space, id: number): Promise<string> {
  return (await s.db.db.selectFrom('webhook_dlq').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status
}

async function storedRows(s: Space, toolId: string, eventId: string): Promise<number> {
  return (await s.db.db.selectFrom('webhook_events').select('id').where('tool_id', '=', toolId).where('id', '=', eventId).execute()).length
}

Console('an operator logs in, sees the overview, finds an event by delivery id and opens it', withTimeLimit(180_000, async (ctx) => {
  const { page, svc, s } = ctx
  // one real webhook through ingest and the worker
  const delivery = githubDelivery('gh-yaml', undefined, { ref: 'refs/heads/console-test', repository: { full_name: 'acme/console' } })
  const sent = await fetch(`${svc.ingestUrl}${delivery.path}`, { method: 'POST', body: delivery.body, headers: delivery.headers })
  assert.is(sent.status, 202, await sent.text())
  await eventually('the delivery is stored', async () => (await storedRows(s, 'gh-yaml', delivery.delivery)) === 1, 30_000)

  const onIngest = await fetch(`${svc.ingestUrl}/console`)
  await onIngest.arrayBuffer()
  assert.is(onIngest.status, 404, 'the ingest port does not serve the console')
  await page.goto(`${svc.adminUrl}/console`)
  await page.getByLabel('Admin token').fill('not-the-token-0123456789')
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByText('That token was not accepted.').waitFor()
  await page.getByLabel('Admin token').fill(TOKEN)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor()
  const overview = await (await fetch(`${svc.adminUrl}/admin/overview`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { dlq: { open: number } }
  assert.is(await page.locator('#dlq-depth').textContent(), String(overview.dlq.open), 'the page shows the API\'s DLQ depth')
  assert.ok(await page.locator('#breakers-closed').isVisible(), 'with no failing destination, the overview says every breaker is closed')
  assert.is(await page.evaluate(() => sessionStorage.getItem('hookstream.adminToken')), TOKEN, 'the token lives in sessionStorage')
  await shot(page, 'overview')

  await page.getByRole('link', { name: 'Events' }).click()
  await page.getByLabel('Delivery id').fill(delivery.delivery)
  await page.getByRole('button', { name: 'Search' }).click()
  await page.getByRole('link', { name: delivery.delivery }).waitFor()
  assert.is(await page.locator('tbody tr').count(), 1, 'the search finds exactly that delivery')
  await shot(page, 'events')
  await page.getByRole('link', { name: delivery.delivery }).click()
  await page.getByRole('heading', { name: `Event ${delivery.delivery}` }).waitFor()
  const payload = JSON.parse(await page.getByLabel('Payload', { exact: true }).textContent() ?? 'null') as unknown
  const stored = await s.db.db.selectFrom('webhook_events').select('payload').where('id', '=', delivery.delivery).executeTakeFirstOrThrow()
  assert.equal(payload, stored.payload, 'the page shows the stored payload')
  assert.is(await page.locator('#event-state').textContent(), 'stored')
  assert.ok(await page.getByText('event_stored').count() + await page.locator('.ledger li').count() >= 1, 'the fate ledger is listed')
  await shot(page, 'event')
}))

async function attemptRows(s: Space, toolId: string, eventId: string): Promise<number> {
  return (await s.db.db.selectFrom('webhook_deliveries').select('id').where('tool_id', '=', toolId).where('event_id', '=', eventId).execute()).length
}

const replayIdsOf = (rx: Receiver, deliveryId: string) => rx.requests
  .filter((q) => q.headers['webhook-id'] === deliveryId).map((q) => q.headers['webhook-replay-id'] ?? null)

Console('an operator replays an event from its page: the receiver gets it again, marked with webhook-replay-id', withTimeLimit(180_000, async (ctx) => {
  const { page, svc, rx, s } = ctx
  const delivery = githubDelivery('gh-fan', undefined, { ref: 'refs/heads/replay', repository: { full_name: 'acme/replay' } })
  const sent = await fetch(`${svc.ingestUrl}${delivery.path}`, { method: 'POST', body: delivery.body, headers: delivery.headers })
  assert.is(sent.status, 202, await sent.text())
  await eventually('the receiver has the first delivery', () => replayIdsOf(rx, delivery.delivery).length === 1, 30_000)
    .catch((err: Error) => { throw new Error(`${err.message}; service output:\n${svc.output().slice(-3000)}`) })
  assert.equal(replayIdsOf(rx, delivery.delivery), [null], 'the first delivery is no replay')
  // the attempt log is written in batches, after the request
  await eventually('the first attempt is logged', async () => (await attemptRows(s, 'gh-fan', delivery.delivery)) === 1, 30_000)

  await page.goto(`${svc.adminUrl}/console#/events?delivery_id=${encodeURIComponent(delivery.delivery)}`)
  await page.getByRole('link', { name: delivery.delivery }).click()
  await page.getByRole('heading', { name: `Event ${delivery.delivery}` }).waitFor()
  await page.locator('[data-destination="rx"]', { hasText: 'delivered' }).waitFor()
  assert.is(await page.locator('#attempts-rx tbody tr').count(), 1, 'one delivery attempt so far')
  assert.equal(await page.getByLabel('Replay to').locator('option').allTextContents(), ['every destination it went to', `rx (${rx.url})`])
  await page.getByLabel('Replay to').selectOption('rx')
  await page.getByRole('button', { name: 'Replay', exact: true }).click()
  await page.locator('#replay-progress[data-status="done"]').waitFor()
  const progress = await page.locator('#replay-progress').textContent() ?? ''
  assert.match(progress, /to destination rx: done\. 1 of 1 event sent\./)
  const replayId = /Replay (rpl_[0-9a-f-]{36})/.exec(progress)?.[1]
  assert.ok(replayId, `the page names the replay: ${progress}`)
  await eventually('the receiver has the replayed request', () => replayIdsOf(rx, delivery.delivery).length === 2, 30_000)
  assert.equal(replayIdsOf(rx, delivery.delivery), [null, replayId], 'the receiver got the event again, once, marked with the replay id')
  await shot(page, 'event-replay')
  // the replayed delivery's attempt is logged once it settled; the reloaded page lists it
  await eventually('the replayed attempt is logged', async () => (await attemptRows(s, 'gh-fan', delivery.delivery)) === 2, 30_000)
  await page.getByRole('button', { name: 'Reload the event' }).click()
  await page.locator('#attempts-rx tbody tr').nth(1).waitFor()
  assert.is(await page.locator('#attempts-rx tbody tr').count(), 2, 'the page shows the new attempt')
  assert.match(await page.locator('#attempts-rx tbody tr').nth(1).textContent() ?? '', /200/)
  await shot(page, 'event-attempts')

  // every event matching the search: a dry run shows the count, nothing is sent before the confirmation
  await page.goto(`${svc.adminUrl}/console#/events?tool=gh-fan&repository=acme%2Freplay`)
  await page.getByRole('button', { name: 'Replay matching…' }).click()
  await page.getByText('Replay 1 event matching tool = gh-fan, repository = acme/replay?').waitFor()
  await shot(page, 'events-replay-confirm')
  assert.is(replayIdsOf(rx, delivery.delivery).length, 2, 'the dry run sent nothing')
  await page.getByRole('button', { name: 'Replay 1 event' }).click()
  await page.locator('#replay-progress[data-status="done"]').waitFor()
  await eventually('the receiver has the second replay', () => replayIdsOf(rx, delivery.delivery).length === 3, 30_000)
  const third = replayIdsOf(rx, delivery.delivery)[2]
  assert.ok(third && third !== replayId, 'the bulk replay is a new replay with its own id')
  assert.match(await page.locator('#replay-progress').textContent() ?? '', new RegExp(`Replay ${third}: done\\. 1 of 1 event sent\\.`))

  // over REPLAY_CONFIRM_OVER (1 here) the API wants confirm: true; the console sends it after the confirmation
  const second = githubDelivery('gh-fan', undefined, { ref: 'refs/heads/replay-2', repository: { full_name: 'acme/replay' } })
  const sentSecond = await fetch(`${svc.ingestUrl}${second.path}`, { method: 'POST', body: second.body, headers: second.headers })
  assert.is(sentSecond.status, 202, await sentSecond.text())
  await eventually('the receiver has the second event', () => replayIdsOf(rx, second.delivery).length === 1, 30_000)
  await page.goto(`${svc.adminUrl}/console#/events?repository=acme%2Freplay&tool=gh-fan`)
  await page.getByRole('button', { name: 'Replay matching…' }).click()
  await page.getByText('Replay 2 events matching tool = gh-fan, repository = acme/replay? That is over the limit for an unconfirmed replay.').waitFor()
  await page.getByRole('button', { name: 'Replay 2 events' }).click()
  await page.locator('#replay-progress[data-status="done"]').waitFor()
  await eventually('the receiver has both events again', () => replayIdsOf(rx, delivery.delivery).length === 4 && replayIdsOf(rx, second.delivery).length === 2, 30_000)
  const fourth = replayIdsOf(rx, delivery.delivery)[3]
  assert.ok(fourth && fourth !== third, 'a new replay')
  assert.is(replayIdsOf(rx, second.delivery)[1], fourth, 'one replay sent both events')
  assert.match(await page.locator('#replay-progress').textContent() ?? '', new RegExp(`Replay ${fourth}: done\\. 2 of 2 events sent\\.`))
}))

Console('a failing destination: the overview shows its open breaker, the event page its failed attempts with their error', withTimeLimit(180_000, async (ctx) => {
  const { page, svc, down } = ctx
  const delivery = githubDelivery('gh-down')
  const sent = await fetch(`${svc.ingestUrl}${delivery.path}`, { method: 'POST', body: delivery.body, headers: delivery.headers })
  assert.is(sent.status, 202, await sent.text())
  const breakers = async () => ((await (await fetch(`${svc.adminUrl}/admin/breakers`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { breakers: { destination: string; state: string }[] }).breakers
  await eventually('the breaker of destination gh-down/down is open', async () => (await breakers()).some((b) => b.destination === 'gh-down/down' && b.state === 'open'), 60_000)
    .catch((err: Error) => { throw new Error(`${err.message}: ${down.requests.length} requests; service output:\n${svc.output().slice(-3000)}`) })
  assert.is(down.requests.length, 2, 'two failures in a row opened it; nothing more was sent')

  await page.goto(`${svc.adminUrl}/console#/overview`)
  await page.locator('[data-breaker="gh-down/down"]').waitFor()
  assert.is(await page.locator('[data-breaker="gh-down/down"]').textContent(), 'open')
  assert.is(await page.locator('#breakers-closed').count(), 0)
  await shot(page, 'overview-breaker')

  await eventually('both failed attempts are logged', async () => (await attemptRows(ctx.s, 'gh-down', delivery.delivery)) === 2, 30_000)
  await page.goto(`${svc.adminUrl}/console#/events/gh-down/${delivery.delivery}`)
  await page.getByRole('heading', { name: `Event ${delivery.delivery}` }).waitFor()
  const rows = page.locator('#attempts-down tbody tr')
  assert.is(await rows.count(), 2, 'both failed attempts are listed')
  const cells = await rows.nth(0).locator('td').allTextContents()
  assert.equal([cells[0], cells[3]], ['1', '500'])
  assert.match(cells[4] ?? '', /^DESTINATION_5XX \(transient\)/, `the attempt's error code and class: ${cells[4]}`)
  await shot(page, 'event-failed-attempts')
}))

Console('an operator retries one dead letter, and bulk-retries the rest only after confirming', withTimeLimit(180_000, async (ctx) => {
  const { page, s } = ctx
  const [one, two, three] = await seedDlq(s.db, [{ event: { tool_id: 'gh-yaml' } }, { event: { tool_id: 'gh-yaml' } }, { event: { tool_id: 'gh-yaml' } }])
  // not due for an hour: only the operator re-queues them, never the service's own DLQ worker
  await s.db.db.updateTable('webhook_dlq').set({ next_retry_at: new Date(Date.now() + 3_600_000) }).where('id', 'in', [one!.id, two!.id, three!.id]).execute()
  await page.getByRole('link', { name: 'Dead letters' }).click()
  await page.getByLabel('Tool').fill('gh-yaml')
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.getByRole('button', { name: `Retry DLQ entry ${one!.id}` }).waitFor()
  await shot(page, 'dlq')
  await page.getByRole('button', { name: `Retry DLQ entry ${one!.id}` }).click()
  await page.getByText(`DLQ entry ${one!.id} re-queued`).waitFor()
  // the re-queued event runs through the worker again: stored, and its DLQ row resolved
  await eventually('the retried event is stored and its DLQ row resolved', async () =>
    (await storedRows(s, 'gh-yaml', one!.event.id)) === 1 && (await dlqStatus(s, one!.id)) === 'resolved', 30_000)
    .catch(async (err: Error) => { throw new Error(`${err.message}: row ${await dlqStatus(s, one!.id)}, stored ${await storedRows(s, 'gh-yaml', one!.event.id)}; service output:\n${ctx.svc.output().slice(-3000)}`) })
  assert.equal([await dlqStatus(s, two!.id), await dlqStatus(s, three!.id)], ['pending', 'pending'], 'one retry touches one row')

  await page.getByRole('button', { name: 'Retry all matching…' }).click()
  await page.getByText('Re-queue tool = gh-yaml?').waitFor()
  await page.getByRole('button', { name: 'Cancel' }).click()
  assert.equal([await dlqStatus(s, two!.id), await dlqStatus(s, three!.id)], ['pending', 'pending'], 'cancel re-queues nothing')
  await page.getByRole('button', { name: 'Retry all matching…' }).click()
  await shot(page, 'dlq-confirm')
  await page.getByRole('button', { name: 'Re-queue them' }).click()
  await page.getByText('2 DLQ entries re-queued.').waitFor()
  await eventually('both events are stored and their rows resolved', async () =>
    (await dlqStatus(s, two!.id)) === 'resolved' && (await dlqStatus(s, three!.id)) === 'resolved', 30_000)
    .catch(async (err: Error) => { throw new Error(`${err.message}: rows ${await dlqStatus(s, two!.id)}, ${await dlqStatus(s, three!.id)}; service output:\n${ctx.svc.output().slice(-3000)}`) })
  assert.is(await storedRows(s, 'gh-yaml', two!.event.id) + await storedRows(s, 'gh-yaml', three!.event.id), 2)
}))

Console('an operator creates a tool, edits it and disables it; its secret is set but never shown', withTimeLimit(180_000, async (ctx) => {
  const { page, svc } = ctx
  const api = async (path: string) => (await (await fetch(`${svc.adminUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { tool: Record<string, unknown> }
  await page.getByRole('link', { name: 'Tools' }).click()
  await page.getByRole('heading', { name: 'Tools', level: 1 }).waitFor()
  assert.is(await page.getByText('read-only (config file)').count(), 3, 'the config file\'s three tools are read-only')
  await page.getByRole('link', { name: 'New tool' }).click()
  await page.getByLabel('Id', { exact: true }).fill('gh-console')
  await page.getByLabel('Tenant').fill('acme')
  await page.getByLabel('Signing secret').fill('console-secret-value')
  await page.getByRole('button', { name: 'Create' }).click()
  await page.getByRole('link', { name: 'gh-console' }).waitFor()
  assert.equal((await api('/admin/tools/gh-console')).tool.tenant_id, 'acme')

  await page.getByRole('link', { name: 'gh-console' }).click()
  await page.getByLabel('Tenant').fill('globex')
  assert.is(await page.getByLabel('New signing secret').inputValue(), '', 'the secret field starts empty: a secret is never shown')
  assert.not.match(await page.content(), /console-secret-value/)
  await shot(page, 'tool-edit')
  await page.getByRole('button', { name: 'Save' }).click()
  await page.getByRole('button', { name: 'Disable tool gh-console' }).waitFor()
  const edited = (await api('/admin/tools/gh-console')).tool
  assert.equal([edited.tenant_id, edited.enabled, edited.secret], ['globex', true, '********'])

  // the edit kept the secret: a delivery signed with it is accepted
  const signed = githubDelivery('gh-console')
  const signature = `sha256=${createHmac('sha256', 'console-secret-value').update(signed.body).digest('hex')}`
  const accepted = await fetch(`${svc.ingestUrl}${signed.path}`, { method: 'POST', body: signed.body, headers: { ...signed.headers, 'x-hub-signature-256': signature } })
  assert.is(accepted.status, 202, await accepted.text())

  await page.getByRole('button', { name: 'Disable tool gh-console' }).click()
  await page.getByRole('button', { name: 'Enable tool gh-console' }).waitFor()
  assert.is((await api('/admin/tools/gh-console')).tool.enabled, false)
  await shot(page, 'tools')

  // a destination: added with a write-only header and a generated signing secret shown once, disabled, removed
  const destinations = async () => ((await api('/admin/tools/gh-console/destinations')) as unknown as { destinations: Record<string, unknown>[] }).destinations
  await page.getByRole('link', { name: 'gh-console' }).click()
  await page.getByRole('heading', { name: 'Destinations' }).waitFor()
  await page.getByLabel('Destination id').fill('audit')
  await page.getByLabel('URL', { exact: true }).fill(`${ctx.rx.url}/audit`)
  await page.getByLabel('Event types').fill('webhook.github.push, webhook.github.issues')
  await page.getByLabel('Headers', { exact: true }).fill('x-api-key: console-header-value')
  await page.getByRole('button', { name: 'Add destination' }).click()
  const secret = await page.locator('#dest-secret-once').textContent() ?? ''
  assert.ok(secret.length >= 32, `a generated signing secret is shown once: "${secret}"`)
  const [added, ...others] = await destinations()
  assert.is(others.length, 0)
  assert.equal([added!.id, added!.url, added!.event_types, added!.enabled, added!.secret, added!.headers],
    ['audit', `${ctx.rx.url}/audit`, ['webhook.github.push', 'webhook.github.issues'], true, '********', { 'x-api-key': '********' }])
  await page.getByRole('button', { name: 'Done' }).click()
  await page.getByRole('button', { name: 'Disable destination audit' }).waitFor()
  const html = await page.content()
  assert.not.ok(html.includes(secret) || html.includes('console-header-value'), 'neither the secret nor the header value is shown again')
  // edited in place: URL and event types change, the blank secret and headers keep the stored ones
  await page.getByRole('button', { name: 'Edit destination audit' }).click()
  const edit = page.getByRole('form', { name: 'Edit destination audit' })
  await edit.getByLabel('URL', { exact: true }).fill(`${ctx.rx.url}/audit-v2`)
  await edit.getByLabel('Event types').fill('webhook.github.*')
  await edit.getByRole('button', { name: 'Save destination' }).click()
  await page.getByText(`${ctx.rx.url}/audit-v2`).waitFor()
  const editedDestination = (await destinations())[0]!
  assert.equal([editedDestination.url, editedDestination.event_types, editedDestination.enabled, editedDestination.secret, editedDestination.headers],
    [`${ctx.rx.url}/audit-v2`, ['webhook.github.*'], true, '********', { 'x-api-key': '********' }])
  await page.getByRole('button', { name: 'Disable destination audit' }).click()
  await page.getByRole('button', { name: 'Enable destination audit' }).waitFor()
  assert.is((await destinations())[0]!.enabled, false)
  await shot(page, 'tool-destinations')
  await page.getByRole('button', { name: 'Remove destination audit' }).click()
  await page.getByRole('button', { name: 'Remove', exact: true }).click()
  await page.getByText('0 destinations').waitFor()
  assert.equal(await destinations(), [])
}))

Console('a tool whose transform is an object of field → JSONata keeps it when its tenant is edited in the console', withTimeLimit(120_000, async (ctx) => {
  const { page, svc } = ctx
  const transform = { repo: 'repository.full_name', ref: '$substringAfter(ref, "refs/heads/")' }
  const put = await fetch(`${svc.adminUrl}/admin/tools/gh-map`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ provider: 'github', secret: 'map-secret-value', processing_mode: 'transform_and_store', transform }) })
  assert.is(put.status, 201, await put.text())
  await page.goto(`${svc.adminUrl}/console#/tools/gh-map`)
  await page.getByRole('heading', { name: 'Tool gh-map' }).waitFor()
  assert.match(await page.getByLabel('Transform (JSONata)').inputValue(), /repository\.full_name/, 'the page shows the transform it has')
  await page.getByLabel('Tenant').fill('globex')
  await page.getByRole('button', { name: 'Save' }).click()
  await page.locator('#status', { hasText: 'gh-map' }).waitFor()
  assert.is(await page.locator('#status').textContent(), 'Tool gh-map saved.')
  const saved = (await (await fetch(`${svc.adminUrl}/admin/tools/gh-map`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { tool: Record<string, unknown> }).tool
  assert.equal([saved.tenant_id, saved.processing_mode, saved.transform], ['globex', 'transform_and_store', transform])
}))

Console('an address whose path is not valid percent-encoding shows an error page, not the page before it', withTimeLimit(60_000, async (ctx) => {
  const { page, svc } = ctx
  await page.goto(`${svc.adminUrl}/console#/tools`)
  await page.getByRole('heading', { name: 'Tools', level: 1 }).waitFor()
  const before = ctx.problems.length
  await page.evaluate("location.hash = '#/events/gh/%E0%A4%A'")
  await page.getByRole('heading', { name: 'Something went wrong' }).waitFor({ timeout: 10_000 })
  assert.equal(ctx.problems.slice(before), [], 'no uncaught error')
}))

Console('a search address with a time that is no time (#/events?from=yesterday) shows the API\'s explanation, not a script error', withTimeLimit(60_000, async (ctx) => {
  const { page, svc } = ctx
  const before = ctx.problems.length
  await page.goto(`${svc.adminUrl}/console#/events?from=yesterday`)
  const error = page.locator('p.error[role="alert"]')
  await error.waitFor({ timeout: 10_000 })
  assert.match(await error.textContent() ?? '', /^EVENT_FILTER_INVALID: event search "from" must be an ISO 8601 time/)
  // the browser logs the API's deliberate 400; nothing else may have gone wrong
  assert.equal(ctx.problems.splice(before).filter((p) => !/status of 400/.test(p)), [])
}))

Console('at 375 px every page fits the screen, and the token never appears in a URL or goes anywhere but the admin API', withTimeLimit(120_000, async (ctx) => {
  const { page, svc } = ctx
  await page.setViewportSize({ width: 375, height: 800 })
  for (const [hash, heading] of [['#/overview', 'Overview'], ['#/events', 'Events'], ['#/dlq', 'Dead letters'], ['#/tools', 'Tools']] as const) {
    await page.goto(`${svc.adminUrl}/console${hash}`)
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor()
    const width = await page.evaluate<number>('document.documentElement.scrollWidth')
    assert.ok(width <= 375, `${hash} is ${width} px wide at 375 px`)
    await shot(page, `${hash.slice(2)}-375`)
  }
  // keyboard: on a fresh load the skip link is the first stop, and it moves focus to the content
  await page.reload()
  await page.getByRole('heading', { name: 'Tools', level: 1 }).waitFor()
  await page.keyboard.press('Tab')
  assert.is(await page.evaluate<string>('document.activeElement.textContent'), 'Skip to content')
  await page.keyboard.press('Enter')
  assert.is(await page.evaluate<string>('document.activeElement.id'), 'main')
  const origin = new URL(svc.adminUrl).origin
  assert.equal(ctx.requests.filter((url) => !url.startsWith(origin)), [], 'every request went to the admin listener')
  assert.equal(ctx.requests.filter((url) => url.includes(TOKEN)), [], 'no URL carries the token')
  assert.equal(ctx.problems, [], 'no script error and no CSP violation')
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByLabel('Admin token').waitFor()
  assert.is(await page.evaluate(() => sessionStorage.getItem('hookstream.adminToken')), null)
}))

Console.run()
