import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readConfigFile } from '../../src/config/config-file.js'
import { loadConfig } from '../../src/config/load-config.js'

const dir = mkdtempSync(join(tmpdir(), 'hookstream-config-file-'))
const File = suite('readConfigFile')
File.after(() => rmSync(dir, { recursive: true, force: true }))

File('flattens the seed layout to dotted keys, skips empty values and keeps tools as written', () => {
  const path = join(dir, 'a.yaml')
  writeFileSync(path, 'worker:\n  redis: { addr: "r:6379" }\n  stream: { name: ev, max_len: 10 }\n  processing:\ndatabase: { host: db, port: 5433, password: }\ntools:\n  - { id: x }\n')
  const file = readConfigFile(path, '--config')
  assert.equal([...file.values.entries()], [['worker.redis.addr', 'r:6379'], ['worker.stream.name', 'ev'], ['worker.stream.max_len', 10],
    ['database.host', 'db'], ['database.port', 5433]])
  assert.equal(file.tools, [{ id: 'x' }])
})

File('an empty file is no settings; a list or nested value where a value belongs is refused', () => {
  const empty = join(dir, 'empty.yaml')
  writeFileSync(empty, '')
  assert.is(readConfigFile(empty, '--config').values.size, 0)
  const nested = join(dir, 'nested.yaml')
  writeFileSync(nested, 'http:\n  addr: [1, 2]\n')
  try {
    readConfigFile(nested, '--config')
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /: http\.addr must be a single value, not a list or mapping$/)
  }
  const tools = join(dir, 'tools.yaml')
  writeFileSync(tools, 'tools: { id: x }\n')
  try {
    readConfigFile(tools, '--config')
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /: tools must be a list of tools$/)
  }
})

/** Writes `text` to a fresh file in the test folder and returns its path. */
function yamlFile(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** The ConfigError message `fn` throws. */
function configError(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.is((err as Error).name, 'ConfigError')
    return (err as Error).message
  }
  return assert.unreachable('expected a ConfigError') as never
}

File('${VAR} and ${VAR:-default} in values come from the environment, in settings and in tools; $${ is a literal ${', () => {
  const path = yamlFile('vars.yaml', [
    'database: { host: "${PGHOST:-localhost}", password: "${PGPASSWORD}", name: "hooks_${STAGE:-dev}" }',
    'admin: { token: "${ADMIN_TOKEN}" }',
    'tools:',
    '  - { id: gh, provider: github, secret: "${GH_SECRET}", transform: "{ \'lit\': \'$${X}\', \'root\': $$.ref }" }',
  ].join('\n'))
  const env = { PGPASSWORD: 'p@ss:word', ADMIN_TOKEN: 'admin-token-0123456789', GH_SECRET: 'gh-s3cret', STAGE: '' }
  const file = readConfigFile(path, '--config', env)
  assert.equal([file.values.get('database.host'), file.values.get('database.password'), file.values.get('database.name')], ['localhost', 'p@ss:word', 'hooks_dev'])
  assert.equal(file.tools, [{ id: 'gh', provider: 'github', secret: 'gh-s3cret', transform: "{ 'lit': '${X}', 'root': $$.ref }" }])
  const config = loadConfig({ env, file: path })
  assert.is(config.database.kind === 'postgres' && config.database.url, 'postgres://postgres:p%40ss%3Aword@localhost:5432/hooks_dev')
  assert.is(config.adminToken, 'admin-token-0123456789')
  assert.is(config.tools[0]!.secret, 'gh-s3cret')
})

File('an unset ${VAR} without a default or a malformed reference names the key and the variable, never a value', () => {
  const unset = configError(() => readConfigFile(yamlFile('unset.yaml', 'database:\n  password: "pre-${DB_PASS}"\n'), '--config', {}))
  assert.is(unset, `${join(dir, 'unset.yaml')}: database.password uses \${DB_PASS}, which is not set in the environment; set DB_PASS, or write \${DB_PASS:-default}`)
  const inTool = configError(() => readConfigFile(yamlFile('tool.yaml', 'tools:\n  - { id: x, secret: "${NOPE}" }\n'), '--config', {}))
  assert.match(inTool, /tools\[0\]\.secret uses \$\{NOPE\}, which is not set/)
  const malformed = configError(() => readConfigFile(yamlFile('bad.yaml', 'log:\n  level: "${LOG LEVEL}"\n'), '--config', {}))
  assert.match(malformed, /log\.level has a malformed variable reference "\$\{LOG LEVEL\}"; write \$\{NAME\}/)
})

File('the seed keys consumer_group, block_duration, redis password/db and metrics.port are read as ours', () => {
  const path = yamlFile('seed.yaml', [
    'worker:',
    '  redis: { addr: "cache:6379", password: "${REDIS_PASSWORD}", db: 3 }',
    '  stream: { consumer_group: seed_workers, block_duration: 2s }',
    'metrics: { enabled: true, port: 9191, path: /metrics }',
  ].join('\n'))
  const config = loadConfig({ env: { REDIS_PASSWORD: 'r3dis' }, file: path })
  assert.is(config.redis.kind === 'server' && config.redis.url, 'redis://cache:6379')
  assert.equal([config.redisOptions.password, config.redisOptions.db], ['r3dis', 3])
  assert.equal([config.keys.group, config.worker.blockTimeoutMs, config.health.endpoint.port], ['seed_workers', 2000, 9191])
  const bad = configError(() => loadConfig({ env: {}, file: yamlFile('seed-bad.yaml', 'worker:\n  stream: { block_duration: soon }\n') }))
  assert.match(bad, /seed-bad\.yaml: worker\.stream\.block_duration must be a duration/)
})

File('seed keys hookstream cannot honour, or written twice, are refused with the key and the fix', () => {
  assert.match(configError(() => readConfigFile(yamlFile('m1.yaml', 'metrics: { path: /prom }\n'), '--config', {})),
    /metrics\.path is not supported other than "\/metrics" \(got "\/prom"\).*remove the key$/)
  assert.match(configError(() => readConfigFile(yamlFile('m2.yaml', 'metrics: { enabled: false }\n'), '--config', {})),
    /metrics\.enabled is not supported as false/)
  assert.match(configError(() => readConfigFile(yamlFile('m3.yaml', 'worker:\n  stream: { group: a, consumer_group: b }\n'), '--config', {})),
    /worker\.stream\.consumer_group and worker\.stream\.group are the same setting; keep one of them/)
})

File.run()
