import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync } from 'node:fs'
import { COMMANDS } from '../../src/cli/command-registry.js'
import { COMMON_FLAGS } from '../../src/cli/command.js'

// The README's CLI synopsis against the commands' declared flags: a flag a command accepts is shown on that
// command's lines, and a flag shown there is one the command accepts (the strict parser refuses any other).
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const cliSection = readme.slice(readme.indexOf('\n## CLI\n'), readme.indexOf('\n### Sending events without HTTP'))
const synopsis = /```\n([\s\S]*?)```/.exec(cliSection)?.[1] ?? ''

/** The synopsis lines of each command: a line starting `hookstream <name>` and the indented lines after it. */
function linesOf(name: string): string {
  const entries: string[] = []
  for (const line of synopsis.split('\n')) {
    if (line.startsWith('hookstream ')) entries.push(line)
    else if (/^\s/.test(line) && entries.length > 0) entries[entries.length - 1] += `\n${line}`
  }
  return entries.filter((e) => e.split(/\s+/)[1] === name).join('\n')
}

test('every flag a command declares is on its lines of the README\'s CLI synopsis, and every flag shown there is declared', () => {
  const globals = new Set(Object.keys(COMMON_FLAGS))
  const problems: string[] = []
  for (const [name, spec] of Object.entries(COMMANDS)) {
    const text = linesOf(name)
    assert.ok(text !== '', `the synopsis has a line for "hookstream ${name}"`)
    const declared = Object.keys(spec.flags ?? {}).filter((f) => f !== 'json' && f !== 'help')
    for (const flag of declared) if (!new RegExp(`--${flag}(?![a-z-])`).test(text)) problems.push(`${name}: --${flag} not shown`)
    for (const [, flag] of text.matchAll(/--([a-z][a-z-]*)/g)) {
      if (!declared.includes(flag as string) && !globals.has(flag as string) && flag !== 'json' && flag !== 'help') problems.push(`${name}: --${flag} shown but not accepted`)
    }
  }
  assert.equal(problems, [])
})

test.run()
