import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { CONFIG_FILE_KEYS } from '../../src/config/config-file.js'
import { loadConfig } from '../../src/config/load-config.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const schema = JSON.parse(readFileSync(join(root, 'hookstream.schema.json'), 'utf8')) as {
  properties: Record<string, { properties?: Record<string, { properties?: Record<string, unknown> }> }>
}
const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema)

/** Every hookstream.yaml the repository ships: examples/*.yaml, the Kubernetes ConfigMap's, the README's. */
function shippedConfigs(): { name: string; text: string }[] {
  const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.yaml'))
    .map((f) => ({ name: `examples/${f}`, text: readFileSync(join(root, 'examples', f), 'utf8') }))
  const configMap = parse(readFileSync(join(root, 'deploy/kubernetes/configmap.yaml'), 'utf8')) as { data: Record<string, string> }
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Configuration'), readme.indexOf('\n## ', readme.indexOf('\n## Configuration') + 5))
  const blocks = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m, i) => ({ name: `README.md Configuration yaml block ${i + 1}`, text: m[1] as string }))
  return [...examples, { name: 'deploy/kubernetes/configmap.yaml hookstream.yaml', text: configMap.data['hookstream.yaml'] as string }, ...blocks]
}

/** Variables the shipped files reference without a default. */
const ENV = {
  DATABASE_PASSWORD: 'pg-secret', DATABASE_URL: 'postgres://app:pw@db:5432/hooks', ADMIN_TOKEN: 'admin-token-0123456789',
  GITHUB_WEBHOOK_SECRET: 'gh-secret', BILLING_WEBHOOK_SECRET: 'billing-secret', REDIS_PASSWORD: 'redis-secret',
  BILLING_FORWARD_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', CI_SIGNING_SECRET: 'whsec_C2lnbmluZy1zZWNyZXQtb2YtY2ktMTIz',
}

test('the schema names exactly the keys the config reader accepts, section by section', () => {
  const keysOf = (v: unknown) => Object.keys((v as { properties?: object }).properties ?? {}).sort()
  assert.equal(Object.keys(schema.properties).sort(), [...Object.keys(CONFIG_FILE_KEYS), 'tools'].sort())
  for (const [section, known] of Object.entries(CONFIG_FILE_KEYS)) {
    if (Array.isArray(known)) {
      assert.equal(keysOf(schema.properties[section]), [...known].sort(), section)
    } else {
      const sub = schema.properties[section]?.properties ?? {}
      assert.equal(Object.keys(sub).sort(), Object.keys(known).sort(), section)
      for (const [name, keys] of Object.entries(known as Record<string, readonly string[]>)) assert.equal(keysOf(sub[name]), [...keys].sort(), `${section}.${name}`)
    }
  }
})

test('every shipped config (examples/*.yaml, the ConfigMap, the README) validates against the schema and loads', () => {
  const configs = shippedConfigs()
  assert.ok(configs.length >= 4, configs.map((c) => c.name).join(', '))
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-schema-'))
  try {
    for (const { name, text } of configs) {
      assert.ok(validate(parse(text)), `${name}: ${JSON.stringify(validate.errors, null, 1)}`)
      const file = join(dir, 'hookstream.yaml')
      writeFileSync(file, text)
      const config = loadConfig({ env: ENV, file })
      assert.ok(config.tools.length >= 1, name)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the schema refuses a misspelled key, a wrong provider and a malformed duration', () => {
  for (const doc of [
    { worker: { stream: { batchsize: 10 } } },
    { tools: [{ id: 'x', provider: 'svn', secret: 's' }] },
    { worker: { processing: { idempotency_ttl: '1 day' } } },
  ]) {
    assert.not.ok(validate(doc), JSON.stringify(doc))
  }
  assert.ok(validate({ worker: { processing: { idempotency_ttl: '${TTL:-24h}' } }, tools: [{ id: 'x', provider: '${PROVIDER}', secret: '${S}' }] }))
})

test.run()
