import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : []
  })
}

const readme = readFileSync('README.md', 'utf8')
const table = readme.slice(readme.indexOf('## Error codes'), readme.indexOf('## Dependencies'))
const documented = new Set([...table.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]))
const code = sources('src').map((f) => readFileSync(f, 'utf8')).join('\n')

test('every PipelineError code in src is in the README error table', () => {
  const used = new Set([...code.matchAll(/PipelineError\(\s*'(?:permanent|transient|infrastructure)',\s*'([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]))
  assert.ok(used.size > 20, `found ${used.size} codes`)
  const missing = [...used].filter((c) => !documented.has(c))
  assert.equal(missing, [], `codes missing from README's "Error codes" table: ${missing.join(', ')}`)
})

test('every HTTP error code the servers answer with is in the README error table', () => {
  const http = sources('src/http').map((f) => readFileSync(f, 'utf8')).join('\n')
  // codes appear as the second argument of a reply (status, 'CODE', …) or as code: 'CODE'
  const used = new Set([
    ...[...http.matchAll(/\(\s*\d{3},\s*'([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]),
    ...[...http.matchAll(/code: '([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]),
  ].filter((c) => c !== 'ACCEPTED' && c !== 'DUPLICATE'))
  assert.ok(used.size > 10, `found ${used.size} codes`)
  const missing = [...used].filter((c) => !documented.has(c))
  assert.equal(missing, [], `HTTP codes missing from README's "Error codes" table: ${missing.join(', ')}`)
})

test('every code in the README error table is still used somewhere in src', () => {
  const stale = [...documented].filter((c) => !code.includes(`'${c}'`))
  assert.equal(stale, [], `README documents codes nothing uses: ${stale.join(', ')}`)
})

test.run()
