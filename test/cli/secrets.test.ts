import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CliIO } from '../../src/cli/command.js'
import { COMMANDS } from '../../src/cli/command-registry.js'
import { runCli } from '../../src/cli/run-cli.js'
import { loadConfig } from '../../src/config/load-config.js'

async function hookstream(argv: string[]) {
  const out: string[] = []
  const err: string[] = []
  const io: CliIO = { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env: {}, progress: (t) => err.push(t) }
  const code = await runCli(argv, io, COMMANDS)
  return { code, out, err }
}

test('secrets generate prints one fresh whsec_ secret (32 random bytes) and nothing else, and a config file accepts it as forward_secret', async () => {
  const a = await hookstream(['secrets', 'generate'])
  const b = await hookstream(['secrets', 'generate'])
  assert.equal([a.code, a.err, a.out.length], [0, [], 1])
  assert.match(a.out[0]!, /^whsec_[A-Za-z0-9+/]{43}=$/)
  assert.is(Buffer.from(a.out[0]!.slice(6), 'base64').length, 32)
  assert.is.not(a.out[0], b.out[0])
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-secrets-'))
  try {
    const file = join(dir, 'hookstream.yaml')
    writeFileSync(file, 'tools:\n  - { id: billing, provider: github, secret: inbound-value, processing_mode: store_and_forward, ' +
      'forward_url: "https://billing.example.com/hooks", forward_secret: "${BILLING_FORWARD_SECRET}" }\n')
    const config = loadConfig({ env: { BILLING_FORWARD_SECRET: a.out[0]! }, file })
    assert.is(config.tools[0]!.forwardSecret, a.out[0])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const json = await hookstream(['secrets', 'generate', '--json'])
  assert.match(JSON.parse(json.out.join('')).secret, /^whsec_/)
  const bad = await hookstream(['secrets', 'show'])
  assert.is(bad.code, 2)
  assert.equal(bad.out, [])
})

test.run()
