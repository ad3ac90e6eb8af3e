import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readConfigFile } from '../../src/config/config-file.js'

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

File.run()
