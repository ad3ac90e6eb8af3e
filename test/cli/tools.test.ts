import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toolsCommand } from '../../src/cli/commands/tools.js'
import { sql } from 'kysely'
import { parseDestination } from '../../src/core/destination.js'
import { parseTool } from '../../src/core/tool.js'
import { createDb } from '../../src/db/database.js'
import { ToolStore } from '../../src/db/tool-store.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

const KEY = 'cli test encryption passphrase'
const SECRET = 'cli-secret-value-never-printed'

const Tools = suite<{ w: CliWorld }>('hookstream tools', {} as { w: CliWorld })
Tools.before.each(async (ctx) => { ctx.w = await cliWorld({ HOOKSTREAM_ENCRYPTION_KEY: KEY, GH_SECRET: SECRET }) })
Tools.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Tools('add, list, show, replace keeping the secret, remove; secrets never printed; changes audited as cli', async ({ w }) => {
  const outputs: string[] = []
  const run = async (args: string[], flags = {}) => {
    const r = await w.run(toolsCommand, args, flags)
    outputs.push(r.out, r.err)
    return r
  }
  const added = await run(['add', 'gh-main'], { provider: 'github', secret: SECRET, tenant: 'acme', mode: 'store_and_forward',
    'forward-url': 'http://127.0.0.1:9/hook', 'retry-policy': '{"max_retries": 2, "initial_interval": "1s"}', transform: '{"ref": "ref"}', 'max-body': '512KiB' })
  assert.is(added.code, 0, added.err)
  assert.match(added.out, /tool "gh-main" created/)
  const store = new ToolStore({ db: w.db.db, encryptionKey: KEY })
  const stored = await store.get('gh-main')
  assert.equal([stored?.secret, stored?.tenantId, stored?.retryPolicy.maxRetries, stored?.transform, stored?.maxBodyBytes], [SECRET, 'acme', 2, { ref: 'ref' }, 512 * 1024])
  const list = await run(['list'])
  assert.match(list.out, /^ID\s+PROVIDER\s+TENANT_ID\s+MODE/)
  assert.match(list.out, /gh-main\s+github\s+acme\s+store_and_forward/)
  const json = await run(['list'], { json: true })
  assert.equal(JSON.parse(json.out).map((t: { id: string; secret: string; source: string }) => [t.id, t.secret, t.source]), [['gh-main', '********', 'store']])
  const show = await run(['show', 'gh-main'])
  assert.match(show.out, /secret:\s+\*{8}/)
  const replaced = await run(['add', 'gh-main'], { provider: 'github', tenant: 'beta', disabled: true })
  assert.match(replaced.out, /replaced/)
  const after = await store.get('gh-main')
  assert.equal([after?.secret, after?.tenantId, after?.enabled, after?.processingMode], [SECRET, 'beta', false, 'store'])
  assert.is((await run(['remove', 'gh-main'])).code, 0)
  assert.is(await store.get('gh-main'), undefined)
  const audit = await w.db.db.selectFrom('webhook_audit_log').select(['action', 'actor']).orderBy('id').execute()
  assert.equal(audit.map((a) => [a.action, a.actor]), [['tool_upserted', 'cli'], ['tool_upserted', 'cli'], ['tool_deleted', 'cli']])
  for (const text of outputs) assert.ok(!text.includes(SECRET), text)
})

Tools('add --file reads a JSON or YAML tool; --secret-env reads the secret from the environment', async ({ w }) => {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-tools-'))
  try {
    writeFileSync(join(dir, 'tool.json'), JSON.stringify({ id: 'from-json', provider: 'gitlab', secret: 'x', tenant_id: 't1' }))
    writeFileSync(join(dir, 'tool.yaml'), 'id: from-yaml\nprovider: generic\nsignature: none\n')
    assert.is((await w.run(toolsCommand, ['add'], { file: join(dir, 'tool.json') })).code, 0)
    assert.is((await w.run(toolsCommand, ['add'], { file: join(dir, 'tool.yaml') })).code, 0)
    assert.is((await w.run(toolsCommand, ['add', 'env-secret'], { provider: 'github', 'secret-env': 'GH_SECRET' })).code, 0)
    const store = new ToolStore({ db: w.db.db, encryptionKey: KEY })
    assert.equal((await store.list()).map((t) => [t.id, t.provider, t.tenantId]), [['env-secret', 'github', 'default'], ['from-json', 'gitlab', 't1'], ['from-yaml', 'generic', 'default']])
    assert.is((await store.get('env-secret'))?.secret, SECRET)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

Tools('--transform takes JSON rules or any JSONata expression, an object constructor `{ … }` too, as the README shows', async ({ w }) => {
  const added = await w.run(toolsCommand, ['add', 'jsonata-object'], { provider: 'github', secret: 's', mode: 'transform_and_store',
    transform: '{"ref": ref, "commits": $count(commits)}' })
  assert.is(added.code, 0, added.err)
  const store = new ToolStore({ db: w.db.db, encryptionKey: KEY })
  assert.is((await store.get('jsonata-object'))?.transform, '{"ref": ref, "commits": $count(commits)}')
  // JSON rules stay an object of field → expression
  assert.is((await w.run(toolsCommand, ['add', 'json-rules'], { provider: 'github', secret: 's', transform: ' {"ref": "ref"}' })).code, 0)
  assert.equal((await store.get('json-rules'))?.transform, { ref: 'ref' })
  // neither JSON nor JSONata: the compiler's message, naming the field, not a retry-policy example
  const bad = await w.run(toolsCommand, ['add', 'bad'], { provider: 'github', secret: 's', transform: '{"ref": ref' })
  assert.is(bad.code, 1)
  assert.match(bad.err, /field "transform" does not compile as JSONata/)
  assert.not.match(bad.err, /max_retries/)
})

Tools('a --signature that is not JSON is refused with an example of a signature, not of a retry policy', async ({ w }) => {
  const r = await w.run(toolsCommand, ['add', 'x'], { provider: 'generic', secret: 's', signature: '{header: x}' })
  assert.is(r.code, 2)
  assert.match(r.err, /--signature must be JSON/)
  assert.not.match(r.err, /max_retries/)
})

Tools('errors go to stderr, exit 2 for a wrong command line and 1 for a failure, and say what to fix', async ({ w }) => {
  const cases: [string[], Record<string, string | true>, RegExp, number][] = [
    [[], {}, /missing subcommand/, 2],
    [['frobnicate'], {}, /unknown or malformed subcommand/, 2],
    [['add', 'x'], { provider: 'svn', secret: 's' }, /field "provider" must be one of github/, 1],
    [['add', 'x'], { provider: 'github' }, /field "secret" is required/, 1],
    [['add', 'x'], { provider: 'github', secret: 's', 'retry-policy': '{oops' }, /--retry-policy must be JSON/, 2],
    [['add', 'x'], { provider: 'github', secret: 's', mode: 'transform_and_store', transform: '{"n": "$count("}' },
      /field "transform\.n" does not compile as JSONata: .+/, 1],
    [['add', 'x'], { provider: 'github', 'secret-env': 'NOPE' }, /NOPE: that environment variable is not set/, 2],
    [['show', 'missing'], {}, /tool "missing" does not exist/, 1],
    [['remove', 'missing'], {}, /tool "missing" does not exist/, 1],
    [['show'], {}, /needs a tool id/, 2],
  ]
  for (const [args, flags, message, code] of cases) {
    const r = await w.run(toolsCommand, args, flags)
    assert.is(r.code, code, args.join(' '))
    assert.match(r.err, message)
    assert.is(r.out, '')
  }
})

Tools('rotate-secret, retire-secret and reencrypt: two-key rotation of both secrets and of the encryption key, nothing secret printed', async ({ w }) => {
  const NEW_SECRET = 'cli-new-secret-never-printed'
  const NEW_KEY = 'the next cli encryption passphrase'
  w.env.NEW_SECRET = NEW_SECRET
  const outputs: string[] = []
  const run = async (args: string[], flags = {}) => {
    const r = await w.run(toolsCommand, args, flags)
    outputs.push(r.out, r.err)
    return r
  }
  assert.is((await run(['add', 'gh'], { provider: 'github', 'secret-env': 'GH_SECRET' })).code, 0)
  const rotated = await run(['rotate-secret', 'gh'], { 'secret-env': 'NEW_SECRET', 'previous-expires-in': '1h' })
  assert.is(rotated.code, 0, rotated.err)
  const store = new ToolStore({ db: w.db.db, encryptionKey: KEY })
  const during = (await store.get('gh'))!
  assert.equal([during.secret, during.previousSecret], [NEW_SECRET, SECRET])
  assert.ok(Math.abs(during.previousSecretExpiresAt! - (Date.now() + 3_600_000)) < 60_000)
  assert.is((await run(['retire-secret', 'gh'])).code, 0)
  assert.is((await store.get('gh'))!.previousSecret, undefined)
  assert.is.not((await run(['rotate-secret', 'gh'])).code, 0, 'an inbound rotation needs the new secret')

  const added = await run(['add', 'fw'], { provider: 'github', 'secret-env': 'GH_SECRET', mode: 'store_and_forward', 'forward-url': 'https://hooks.example.test/in?token=tok-x' })
  const shownOnce = /whsec_[A-Za-z0-9+/=]+/.exec(added.out)?.[0]
  assert.ok(shownOnce, added.out)
  assert.is((await store.get('fw'))!.forwardSecret, shownOnce)
  assert.not.match(added.out, /tok-x/)
  assert.not.match((await run(['show', 'fw'])).out, /whsec_|tok-x/)
  const next = /whsec_[A-Za-z0-9+/=]+/.exec((await run(['rotate-secret', 'fw'], { forward: true })).out)?.[0]
  assert.ok(next && next !== shownOnce)
  const fw = (await store.get('fw'))!
  assert.equal([fw.forwardSecret, fw.previousForwardSecret], [next, shownOnce])
  assert.is((await run(['retire-secret', 'fw'], { forward: true })).code, 0)
  assert.is((await store.get('fw'))!.previousForwardSecret, undefined)

  // the encryption key: set the new key and the old one as previous, move every row, then drop the old one
  w.env.HOOKSTREAM_ENCRYPTION_KEY = NEW_KEY
  w.env.HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS = KEY
  const moved = await run(['reencrypt'], { json: true })
  assert.is(moved.code, 0, moved.err)
  assert.equal(JSON.parse(moved.out), { rows: 2, rewritten: 2 })
  delete w.env.HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS
  const list = await run(['list'], { json: true })
  assert.is(list.code, 0, list.err)
  assert.equal(JSON.parse(list.out).map((t: { id: string }) => t.id), ['fw', 'gh'])
  assert.is((await new ToolStore({ db: w.db.db, encryptionKey: NEW_KEY }).get('gh'))!.secret, NEW_SECRET)
  const old = await run(['list'], {})
  assert.is(old.code, 0)
  w.env.HOOKSTREAM_ENCRYPTION_KEY = KEY
  const withOldKey = await run(['list'], {})
  assert.is.not(withOldKey.code, 0, 'the old key alone no longer reads the rows')
  assert.match(withOldKey.err, /HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS/)
  for (const text of outputs) assert.ok(!text.includes(SECRET) && !text.includes(NEW_SECRET), text)
  const audit = await w.db.db.selectFrom('webhook_audit_log').select(['action', 'details']).orderBy('id').execute()
  assert.equal(audit.map((a) => a.action).filter((a) => a !== 'tool_upserted'),
    ['tool_secret_rotated', 'tool_secret_retired', 'tool_secret_rotated', 'tool_secret_retired', 'tools_reencrypted'])
  assert.not.match(JSON.stringify(audit), /cli-new-secret|cli-secret-value|whsec_|tok-x/)
})

Tools('rotate-secret racing a destination change keeps both, not the tool as it was read before the change', async ({ w }) => {
  const db = await createDb({ url: w.env.DATABASE_URL as string, poolSize: 4 })
  try {
    const store = new ToolStore({ db: db.db, encryptionKey: KEY })
    await store.upsert(parseTool({ id: 'gh', provider: 'github', secret: SECRET }), 'test')
    // the test holds the row lock, so the destination change waits first and the rotation second
    let unlock!: () => void
    let locked!: () => void
    const taken = new Promise<void>((resolve) => { locked = resolve })
    const holder = db.db.transaction().execute(async (trx) => {
      await trx.selectFrom('webhook_tools').select('id').where('id', '=', 'gh').forUpdate().execute()
      locked()
      await new Promise<void>((resolve) => { unlock = resolve })
    })
    await taken
    const waiters = async (count: number) => {
      for (;;) {
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(db.db)
        if ((rows[0]?.n ?? 0) >= count) return
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    const added = store.changeDestinations('gh', 'ci', 'destination_added', 'test', (current) => [...current, parseDestination({ id: 'ci', url: 'https://ci.example.test/in' })])
    await waiters(1)
    const rotated = w.run(toolsCommand, ['rotate-secret', 'gh'], { secret: 'cli-secret-two' })
    await waiters(2)
    unlock()
    await holder
    await added
    assert.is((await rotated).code, 0, (await rotated).err)
    const stored = await store.get('gh')
    assert.equal([stored?.destinations?.map((d) => d.id), stored?.secret, stored?.previousSecret], [['ci'], 'cli-secret-two', SECRET])
  } finally {
    await db.close()
  }
})

Tools('list shows every readable tool when one stored row no longer parses, names that row on stderr and exits 1', async ({ w }) => {
  const store = new ToolStore({ db: w.db.db, encryptionKey: KEY })
  await store.upsert(parseTool({ id: 'good', provider: 'github', secret: SECRET }), 'test')
  await w.db.db.insertInto('webhook_tools').values({ id: 'bad-row', provider: 'svn', secret: 'x', tenant_id: 'acme', processing_mode: 'store',
    forward_url: null, transform: null, retry_policy: JSON.stringify({}), signature: null, enabled: true }).execute()
  const list = await w.run(toolsCommand, ['list'], { json: true })
  assert.is(list.code, 1, 'a row left out is a failure for scripts')
  assert.equal(JSON.parse(list.out).map((t: { id: string }) => t.id), ['good'])
  assert.match(list.err, /^stored tool "bad-row" cannot be read and is not listed: .*field "provider"/)
})

Tools('rotate-secret refuses a --previous-expires-in beyond any date as a usage error, not a stack trace', async ({ w }) => {
  const store = new ToolStore({ db: w.db.db, encryptionKey: KEY })
  await store.upsert(parseTool({ id: 'gh', provider: 'github', secret: SECRET }), 'test')
  const r = await w.run(toolsCommand, ['rotate-secret', 'gh'], { secret: 'cli-secret-two', 'previous-expires-in': '100000000000d' })
  assert.is(r.code, 2)
  assert.match(r.err, /--previous-expires-in must be a duration such as "24h"; got "100000000000d"/)
  assert.is((await store.get('gh'))?.secret, SECRET)
})

Tools.run()
