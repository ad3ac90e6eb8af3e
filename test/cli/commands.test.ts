import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { commandsCommand } from '../../src/cli/commands/commands.js'
import { appWithDeadLetters, waitUntil } from '../commands/command-helpers.js'
import { cliWorld, type CliWorld } from './cli-harness.js'

const Commands = suite<{ w: CliWorld }>('hookstream commands dlq', {} as { w: CliWorld })
Commands.before.each(async (ctx) => { ctx.w = await cliWorld() })
Commands.after.each(async (ctx) => { await ctx.w.close() })

Commands('list, show, retry for the failed worker only, and discard the dead letters of a command log', async ({ w }) => {
  const stream = `cmds-${randomUUID()}`
  const { app, broken, seen } = await appWithDeadLetters(w.redis, stream, 3)
  try {
    const listed = await w.run(commandsCommand, ['dlq', 'list'], { stream, json: true })
    assert.is(listed.code, 0, listed.err)
    const { entries } = JSON.parse(listed.out)
    assert.equal(entries.map((e: { worker: string; command: string; error_code: string }) => [e.worker, e.command, e.error_code]),
      Array(3).fill(['billing', 'charge', 'CARD_DECLINED']))
    assert.equal(JSON.parse((await w.run(commandsCommand, ['dlq', 'list'], { stream, json: true, worker: 'audit' })).out).entries, [])
    const paged = JSON.parse((await w.run(commandsCommand, ['dlq', 'list'], { stream, json: true, limit: '2' })).out)
    assert.equal([paged.entries.length, paged.next_cursor], [2, paged.entries[1].id])

    const [newest, middle, oldest] = entries as { id: string }[]
    const shown = await w.run(commandsCommand, ['dlq', 'show', oldest!.id], { stream, json: true })
    assert.equal(JSON.parse(shown.out).payload, '{"n":1}')
    const human = await w.run(commandsCommand, ['dlq', 'show', oldest!.id], { stream })
    assert.match(human.out, /error_code: +CARD_DECLINED/)

    broken.on = false
    const retried = await w.run(commandsCommand, ['dlq', 'retry', oldest!.id], { stream })
    assert.is(retried.code, 0, retried.err)
    assert.match(retried.out, /re-queued for worker "billing" as log entry \d+-\d+/)
    await waitUntil('billing handled the re-driven command', () => seen.billing.length === 1)
    assert.equal(seen.billing, [1])
    await waitUntil('audit skipped it', () => app.info()[1]?.skipped === 1)
    assert.equal(seen.audit, [1, 2, 3], 'the other worker did not handle the re-driven command again')

    const discarded = await w.run(commandsCommand, ['dlq', 'discard', middle!.id], { stream })
    assert.is(discarded.code, 0, discarded.err)
    const left = JSON.parse((await w.run(commandsCommand, ['dlq', 'list'], { stream, json: true })).out).entries
    assert.equal(left.map((e: { id: string }) => e.id), [newest!.id])

    const again = await w.run(commandsCommand, ['dlq', 'retry', oldest!.id], { stream })
    assert.equal([again.code, again.err], [1, `hookstream commands: command DLQ entry ${oldest!.id} does not exist; list entries with \`hookstream commands dlq list\``])
    const bad = await w.run(commandsCommand, ['dlq', 'show', 'nope'], { stream })
    assert.match(bad.err, /a command DLQ entry id looks like "1718000000000-0"/)
    const usage = await w.run(commandsCommand, ['dlq', 'list', 'extra'], { stream })
    assert.match(usage.err, /usage: hookstream commands dlq list/)
  } finally {
    await app.stop()
  }
})

Commands.run()
