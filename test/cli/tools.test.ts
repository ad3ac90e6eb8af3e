import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toolsCommand } from '../../src/cli/commands/tools.js'
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
    'forward-url': 'http://127.0.0.1:9/hook', 'retry-policy': '{"max_retries": 2, "initial_interval": "1s"}', transform: '{"ref": "ref"}' })
  assert.is(added.code, 0, added.err)
  assert.match(added.out, /tool "gh-main" created/)
  const store = new ToolStore({ db: w.db.db, encryptionKey: KEY })
  const stored = await store.get('gh-main')
  assert.equal([stored?.secret, stored?.tenantId, stored?.retryPolicy.maxRetries, stored?.transform], [SECRET, 'acme', 2, { ref: 'ref' }])
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

Tools('errors go to stderr, exit 2 for a wrong command line and 1 for a failure, and say what to fix', async ({ w }) => {
  const cases: [string[], Record<string, string | true>, RegExp, number][] = [
    [[], {}, /missing subcommand/, 2],
    [['frobnicate'], {}, /unknown or malformed subcommand/, 2],
    [['add', 'x'], { provider: 'svn', secret: 's' }, /field "provider" must be one of github/, 1],
    [['add', 'x'], { provider: 'github' }, /field "secret" is required/, 1],
    [['add', 'x'], { provider: 'github', secret: 's', 'retry-policy': '{oops' }, /--retry-policy must be JSON/, 2],
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

Tools.run()
