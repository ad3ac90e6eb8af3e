import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** The README's TypeScript code blocks (```ts / ```typescript), with the line each starts on. */
function readmeBlocks(): { line: number; code: string }[] {
  const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n')
  const blocks: { line: number; code: string }[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i] as string)) continue
    const start = i + 1
    while (i + 1 < lines.length && lines[i + 1] !== '```') i++
    blocks.push({ line: start + 1, code: lines.slice(start, i + 1).join('\n') })
    i++
  }
  return blocks
}

test('every TypeScript block of the README compiles under the project\'s strict settings, importing from hookstream', () => {
  const blocks = readmeBlocks()
  assert.ok(blocks.length >= 3, `expected the README's TypeScript examples; found ${blocks.length}`)
  // inside the repository, so `hookstream` (tsconfig paths) and the dependencies resolve as for examples/
  const dir = mkdtempSync(join(root, '.readme-blocks-'))
  try {
    blocks.forEach((b, i) => writeFileSync(join(dir, `block-${i + 1}-line-${b.line}.ts`), `${b.code}\nexport {}\n`))
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', compilerOptions: { noEmit: true }, include: ['*.ts'] }))
    const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { encoding: 'utf8', timeout: 120_000 })
    const errors = `${tsc.stdout}${tsc.stderr}`.split('\n').filter((l) => /error TS/.test(l)).map((l) => l.slice(l.indexOf('block-')))
    assert.equal(errors, [], `README blocks (file names give the README line) do not compile:\n${errors.join('\n')}`)
    assert.is(tsc.status, 0, tsc.stdout + tsc.stderr)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
