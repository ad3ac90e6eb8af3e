import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CliIO } from '../../src/cli/command.js'
import { COMMANDS } from '../../src/cli/command-registry.js'
import { runCli } from '../../src/cli/run-cli.js'
import { MIGRATIONS } from '../../src/db/migrate.js'
import { seedDlq, streamEvents } from '../db/dlq-seed.js'
import { sharedPostgres } from '../helpers/servers.js'
import { cliWorld, type CliWorld } from './cli-harness.js'
import { release } from '../helpers/release.js'

/** Runs `hookstream <argv>` in-process with captured output (and progress lines) and the world's environment. */
async function hookstream(env: Record<string, string>, argv: string[]) {
  const out: string[] = []
  const err: string[] = []
  const progress: string[] = []
  const io: CliIO = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env, progress: (t) => progress.push(t) }
  const code = await runCli(argv, io, COMMANDS)
  return { code, out: out.join('\n'), err: err.join('\n'), progress }
}

const Strict = suite<{ w: CliWorld }>('hookstream: strict flags, help, version, exit codes', {} as { w: CliWorld })
Strict.before.each(async (ctx) => { ctx.w = await cliWorld() })
Strict.after.each((ctx) => release(ctx, { w: (w) => w.close() }))

Strict('dlq retry --all --tol gh-main exits 2 naming --tol (did you mean --tool?) and re-queues nothing', async ({ w }) => {
  await seedDlq(w.db, [{ event: { tool_id: 'gh-main' } }, { event: { tool_id: 'gl-other' } }, { event: { tool_id: 'gh-main' }, status: 'failed' }])
  const r = await hookstream(w.env, ['dlq', 'retry', '--all', '--tol', 'gh-main'])
  assert.is(r.code, 2)
  assert.match(r.err, /^hookstream dlq: unknown flag --tol \(did you mean --tool\?\); nothing was done/)
  assert.is(r.out, '')
  const rows = await w.db.db.selectFrom('webhook_dlq').select('status').orderBy('id').execute()
  assert.equal(rows.map((x) => x.status), ['pending', 'pending', 'failed'])
  assert.is((await streamEvents(w.redis, w.keys.stream)).length, 0)
  const narrowed = await hookstream(w.env, ['dlq', 'retry', '--all', '--tool', 'gh-main', '--json'])
  assert.is(narrowed.code, 0, narrowed.err)
  assert.is(JSON.parse(narrowed.out).requeued, 2)
  assert.ok(narrowed.progress.some((p) => /re-queued 2 DLQ entries/.test(p)), narrowed.progress.join('|'))
})

Strict('every command refuses an unknown flag, a missing value and a value given to a switch with exit 2', async ({ w }) => {
  for (const name of Object.keys(COMMANDS)) {
    const unknown = await hookstream(w.env, [name, '--no-such-flag'])
    assert.is(unknown.code, 2, name)
    assert.match(unknown.err, new RegExp(`^hookstream ${name}: unknown flag --no-such-flag; nothing was done`))
    const missing = await hookstream(w.env, [name, '--config'])
    assert.is(missing.code, 2, name)
    assert.match(missing.err, /--config <value>' argument missing/)
  }
  const switchValue = await hookstream(w.env, ['stream', 'info', '--json=yes'])
  assert.is(switchValue.code, 2)
  assert.match(switchValue.err, /--json' does not take an argument/)
  const flagsFirst = await hookstream(w.env, ['--log-level', 'warn', 'stream', 'info', '--json'])
  assert.is(flagsFirst.code, 0, flagsFirst.err)
  assert.is(JSON.parse(flagsFirst.out).length, 0)
  const typoFirst = await hookstream(w.env, ['--tol', 'gh-main', 'dlq', 'retry', '--all'])
  assert.is(typoFirst.code, 2)
  assert.match(typoFirst.err, /unknown flag --tol/)
  const unknownCommand = await hookstream(w.env, ['dlqs', 'list'])
  assert.is(unknownCommand.code, 2)
  assert.match(unknownCommand.err, /unknown command "dlqs"/)
})

Strict('--version prints the package version; <command> --help and help <command> print that command\'s usage and flags', async ({ w }) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  const version = await hookstream(w.env, ['--version'])
  assert.equal([version.code, version.out], [0, `hookstream ${pkg.version} (node ${process.versions.node})`])
  for (const name of Object.keys(COMMANDS)) {
    const help = await hookstream(w.env, [name, '--help'])
    assert.is(help.code, 0, name)
    assert.match(help.out, new RegExp(`^usage: hookstream ${name}\\b`))
    for (const flag of Object.keys(COMMANDS[name]!.flags)) assert.match(help.out, new RegExp(`--${flag}\\b`), `${name} --${flag}`)
    assert.is((await hookstream(w.env, ['help', name])).out, help.out)
  }
  const global = await hookstream(w.env, ['--help'])
  assert.is(global.code, 0)
  for (const name of Object.keys(COMMANDS)) assert.match(global.out, new RegExp(`^  ${name}\\s`, 'm'))
  assert.is((await hookstream(w.env, [])).code, 2)
})

Strict('every command that prints takes --json', () => {
  const printing = Object.entries(COMMANDS).filter(([name]) => name !== 'run')
  assert.ok(printing.length >= 7)
  for (const [name, spec] of printing) assert.equal(spec.flags.json, { type: 'boolean', description: 'print JSON instead of text' }, name)
})

Strict('config check prints the effective settings with secrets masked (exit 0) and names a bad key (exit 1)', async ({ w }) => {
  const env = { ...w.env, DATABASE_URL: 'postgres://app:hunter2-secret@db.internal:5432/hooks', ADMIN_TOKEN: 'admin-token-1234567890', WORKER_BATCH_SIZE: '250' }
  const ok = await hookstream(env, ['config', 'check', '--json'])
  assert.is(ok.code, 0, ok.err)
  const report = JSON.parse(ok.out) as { valid: boolean; settings: Record<string, string> }
  assert.is(report.valid, true)
  assert.is(report.settings.database, 'postgres://app:****@db.internal:5432/hooks')
  assert.is(report.settings['admin token'], 'set')
  assert.match(report.settings.worker!, /batch 250/)
  assert.not.match(ok.out, /hunter2|admin-token-1234567890/)
  const text = await hookstream(env, ['config', 'check'])
  assert.match(text.out, /configuration is valid$/)
  const bad = await hookstream({ ...env, WORKER_BATCH_SIZE: 'lots' }, ['config', 'check'])
  assert.equal([bad.code, bad.out], [1, ''])
  assert.match(bad.err, /^hookstream config: WORKER_BATCH_SIZE must be an integer from 1 to 10000; got "lots"/)
})

Strict('migrate status lists pending migrations without applying them; migrate applies and names them, then has none left', async ({ w }) => {
  const env = { ...w.env, DATABASE_URL: await (await sharedPostgres()).createDatabase() }
  const before = await hookstream(env, ['migrate', 'status', '--json'])
  assert.is(before.code, 0, before.err)
  const names = Object.keys(MIGRATIONS).sort()
  assert.equal(JSON.parse(before.out), { migrations: names.map((name) => ({ name, status: 'pending', applied_at: null })), pending: names.length })
  const applied = await hookstream(env, ['migrate'])
  assert.equal([applied.code, applied.out], [0, `applied ${names.length} migration${names.length === 1 ? '' : 's'}: ${names.join(', ')}`])
  const after = JSON.parse((await hookstream(env, ['migrate', 'status', '--json'])).out) as { migrations: { status: string; applied_at: string }[]; pending: number }
  assert.equal([after.pending, after.migrations.map((m) => m.status)], [0, names.map(() => 'applied')])
  assert.ok(Date.parse(after.migrations[0]!.applied_at) > Date.now() - 60_000)
  const again = await hookstream(env, ['migrate', '--json'])
  assert.equal(JSON.parse(again.out), { applied: [] })
})

Strict('produce reports progress per chunk on a terminal and a final count', async ({ w }) => {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-produce-'))
  try {
    const file = join(dir, 'events.ndjson')
    writeFileSync(file, Array.from({ length: 2500 }, (_, i) => JSON.stringify({ event_type: 'webhook.github.push', tool_id: 'gh', payload: { i } })).join('\n'))
    const r = await hookstream(w.env, ['produce', '--file', file, '--json'])
    assert.is(r.code, 0, r.err)
    assert.equal(JSON.parse(r.out), { enqueued: 2500, duplicates: 0, stream: w.keys.stream })
    assert.equal(r.progress.filter((p) => p !== ''), ['enqueued 1000 events (line 1000)', 'enqueued 2000 events (line 2000)', 'enqueued 2500 events (line 2500)'])
    assert.is(await w.redis.xlen(w.keys.stream), 2500)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

Strict.run()
