import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { closeInOrder } from '../../src/service/shutdown.js'

const SRC = fileURLToPath(new URL('../../src/', import.meta.url))

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [])
}

// every relative import of a file, resolved to a path under src/ (e.g. "service/start-service.js")
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/from '(\.{1,2}\/[^']+)'/g)].map((m) => relative(SRC, join(file, '..', m[1]!)))
}

const Layout = suite('the service assembly in src/service')

Layout('only the CLI and the package index import src/service, and src/service imports nothing from the CLI', () => {
  const files = sources(SRC)
  const intoService = files.filter((f) => !f.startsWith(join(SRC, 'service')) && !f.startsWith(join(SRC, 'cli')) && f !== join(SRC, 'index.ts'))
    .filter((f) => importsOf(f).some((i) => i.startsWith('service/')))
  assert.equal(intoService.map((f) => relative(SRC, f)), [])
  const serviceFiles = files.filter((f) => f.startsWith(join(SRC, 'service')))
  assert.ok(serviceFiles.length >= 10, `expected the service's steps in src/service, found ${serviceFiles.length} files`)
  const back = serviceFiles.filter((f) => importsOf(f).some((i) => i.startsWith('cli/')))
  assert.equal(back.map((f) => relative(SRC, f)), [])
  assert.not.ok(files.some((f) => relative(SRC, f) === join('cli', 'service.ts')), 'src/cli/service.ts is gone')
})

Layout('shutdown closes the parts one after the other, in order, and a part that fails does not stop the rest', async () => {
  const closed: string[] = []
  await closeInOrder([
    async () => { await new Promise((r) => setTimeout(r, 20)); closed.push('scheduler') },
    () => { closed.push('sink'); throw new Error('sink failed to close') },
    async () => { closed.push('trimmer'); throw new Error('trimmer failed to close') },
    () => { closed.push('retention') },
  ])
  assert.equal(closed, ['scheduler', 'sink', 'trimmer', 'retention'])
})

Layout.run()
