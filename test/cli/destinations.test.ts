import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { destinationsCommand } from '../../src/cli/commands/destinations.js'
import { parseTool } from '../../src/core/tool.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const KEY = 'cli test encryption passphrase'
const SIGNING = 'whsec_' + Buffer.alloc(32, 9).toString('base64')
const HEADERS = '{"authorization": "Bearer cli-header-never-printed"}'

const Destinations = suite<{ w: CliWorld; store: ToolStore }>('hookstream destinations', {} as { w: CliWorld; store: ToolStore })
Destinations.before.each(async (ctx) => {
  ctx.w = await cliWorld({ HOOKSTREAM_ENCRYPTION_KEY: KEY, DEST_SECRET: SIGNING, DEST_HEADERS: HEADERS })
  ctx.store = new ToolStore({ db: ctx.w.db.db, encryptionKey: KEY })
  await ctx.store.upsert(parseTool({ id: 'gh', provider: 'github', secret: 'tool-secret', processing_mode: 'store_and_forward', forward_url: 'https://fwd.example.com/in' }), 'test')
})
Destinations.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Destinations('add, list (table and --json), show, disable, enable, remove; secrets never printed but the generated one once; audited as cli', async ({ w, store }) => {
  const outputs: string[] = []
  const run = async (args: string[], flags = {}) => {
    const r = await w.run(destinationsCommand, args, flags)
    outputs.push(r.out, r.err)
    return r
  }
  const added = await run(['add', 'gh', 'ci'], { url: 'https://ci.example.com/in', 'event-types': 'webhook.github.push, webhook.github.pull_request*',
    filter: 'ref = "refs/heads/main"', 'headers-env': 'DEST_HEADERS', timeout: '3s', 'rate-limit': '{"per_second": 20}', 'max-concurrency': '4' })
  assert.is(added.code, 0, added.err)
  const generated = /signing secret \(shown once; give it to the receiver\): (whsec_\S+)/.exec(added.out)?.[1]
  assert.ok(generated, added.out)
  const d = (await store.get('gh'))!.destinations![0]!
  assert.equal([d.secret, d.eventTypes, d.timeoutMs, d.rateLimit, d.maxConcurrency, d.headers], [generated, ['webhook.github.push', 'webhook.github.pull_request*'], 3000,
    { perSecond: 20, burst: 20 }, 4, { authorization: 'Bearer cli-header-never-printed' }])
  assert.is((await run(['add', 'gh', 'audit'], { url: 'https://audit.example.com/in', 'secret-env': 'DEST_SECRET' })).code, 0)
  assert.is((await store.get('gh'))!.destinations![1]!.secret, SIGNING)
  const table = await run(['list', 'gh'])
  assert.match(table.out, /^ID\s+URL\s+ENABLED\s+EVENT_TYPES/)
  assert.match(table.out, /default\s+https:\/\/fwd\.example\.com\/in\s+true/)
  assert.match(table.out, /ci\s+https:\/\/ci\.example\.com\/in\s+true\s+webhook\.github\.push,webhook\.github\.pull_request\*\s+true/)
  assert.equal(JSON.parse((await run(['list', 'gh'], { json: true })).out).map((x: { id: string; secret: string | null }) => [x.id, x.secret]),
    [['default', null], ['ci', '********'], ['audit', '********']])
  assert.match((await run(['show', 'gh', 'ci'])).out, /headers:\s+\{"authorization":"\*{8}"\}/)
  assert.is((await run(['disable', 'gh', 'ci'])).code, 0)
  assert.is((await store.get('gh'))!.destinations![0]!.enabled, false)
  assert.is((await run(['enable', 'gh', 'ci'], { json: true })).code, 0)
  assert.is((await store.get('gh'))!.destinations![0]!.enabled, true)
  assert.is((await run(['remove', 'gh', 'audit'])).code, 0)
  assert.equal((await store.get('gh'))!.destinations!.map((x) => x.id), ['ci'])
  const audit = await w.db.db.selectFrom('webhook_audit_log').select(['action', 'actor']).orderBy('id').execute()
  assert.equal(audit.slice(1).map((a) => [a.action, a.actor]), [['destination_added', 'cli'], ['destination_added', 'cli'], ['destination_updated', 'cli'],
    ['destination_updated', 'cli'], ['destination_removed', 'cli']])
  for (const text of outputs.slice(1)) {
    for (const secret of [generated as string, SIGNING, 'cli-header-never-printed']) assert.not.ok(text.includes(secret), text)
  }
})

Destinations('the same validation as YAML and the API: bad input fails naming the field, nothing is stored; wrong use exits 2', async ({ w, store }) => {
  const bad = await w.run(destinationsCommand, ['add', 'gh', 'ci'], { url: 'https://ci.example.com/in', filter: 'ref = ' })
  assert.is(bad.code, 1)
  assert.match(bad.err, /field "filter" does not compile as JSONata/)
  const dup = await w.run(destinationsCommand, ['add', 'gh', 'x'], { url: 'https://x.example.com/in', 'rate-limit': '{"per_second": 0}' })
  assert.match(dup.err, /rate_limit\.per_second/)
  assert.is((await store.get('gh'))!.destinations, undefined)
  assert.is((await w.run(destinationsCommand, ['add', 'gh'], {})).code, 2)
  assert.is((await w.run(destinationsCommand, ['frob', 'gh', 'x'], {})).code, 2)
  assert.is((await w.run(destinationsCommand, ['add', 'gh', 'x'], { url: 'https://x.example.com', 'rate-limit': 'fast' })).code, 2)
  const def = await w.run(destinationsCommand, ['disable', 'gh', 'default'], {})
  assert.equal([def.code, /forward_url/.test(def.err)], [1, true])
  const missing = await w.run(destinationsCommand, ['remove', 'gh', 'nope'], {})
  assert.equal([missing.code, /has no destination "nope"/.test(missing.err)], [1, true])
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-dest-'))
  try {
    writeFileSync(join(dir, 'd.yaml'), 'id: from-file\nurl: https://file.example.com/in\nevent_types: ["webhook.github.push"]\n')
    assert.is((await w.run(destinationsCommand, ['add', 'gh'], { file: join(dir, 'd.yaml') })).code, 0)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  assert.equal((await store.get('gh'))!.destinations!.map((x) => x.id), ['from-file'])
})

Destinations('--headers-env holding malformed JSON is refused without repeating any of the header values', async ({ w, store }) => {
  w.env.BAD_HEADERS = '{"authorization": Bearer cli-header-never-printed}'
  const r = await w.run(destinationsCommand, ['add', 'gh', 'ci'], { url: 'https://ci.example.com/in', 'headers-env': 'BAD_HEADERS' })
  assert.is(r.code, 2)
  assert.match(r.err, /--headers-env must be JSON/)
  for (const part of ['Bearer', 'never-printed', 'cli-header']) assert.not.match(r.err + r.out, part)
  assert.is((await store.get('gh'))!.destinations, undefined)
})

Destinations('rotate-secret keeps the old secret signing until retire-secret; a generated one is printed once', async ({ w, store }) => {
  assert.is((await w.run(destinationsCommand, ['add', 'gh', 'ci'], { url: 'https://ci.example.com/in', 'secret-env': 'DEST_SECRET' })).code, 0)
  const rotated = await w.run(destinationsCommand, ['rotate-secret', 'gh', 'ci'], { 'previous-expires-in': '24h' })
  assert.is(rotated.code, 0, rotated.err)
  const next = /signing secret \(shown once; give it to the receiver\): (whsec_\S+)/.exec(rotated.out)?.[1]
  assert.ok(next, rotated.out)
  assert.not.ok(rotated.out.includes(SIGNING), 'the old secret is not printed')
  let d = (await store.get('gh'))!.destinations![0]!
  assert.equal([d.secret, d.previousSecret, d.previousSecretExpiresAt! > Date.now() + 23 * 3_600_000], [next, SIGNING, true])
  assert.is((await w.run(destinationsCommand, ['retire-secret', 'gh', 'ci'], {})).code, 0)
  d = (await store.get('gh'))!.destinations![0]!
  assert.equal([d.secret, d.previousSecret], [next, undefined])
  assert.is((await w.run(destinationsCommand, ['rotate-secret', 'gh', 'ci'], { 'previous-expires-in': 'soon' })).code, 2)
})

Destinations.run()
