import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EMPTY, from, lastValueFrom, toArray } from 'rxjs'
import { PipelineError } from '../../src/core/errors.js'
import { parseTool } from '../../src/core/tool.js'
import { extractToolConfig } from '../../src/operators/extract-tool-config.js'
import { envelope, asOneBatch } from './helpers.js'

const Extract = suite('extractToolConfig')
const on = parseTool({ id: 'on', provider: 'github', secret: 'x' })
const off = parseTool({ id: 'off', provider: 'github', secret: 'x', enabled: false })
const tools = { get: async (id: string) => ({ on, off } as Record<string, typeof on>)[id] }

Extract('an empty source stays empty', async () => {
  assert.equal(await lastValueFrom(EMPTY.pipe(asOneBatch(extractToolConfig({ tools })), toArray())), [])
})

Extract('attaches known tools; unknown and disabled tools fail permanently', async () => {
  const envs = [envelope({ tool_id: 'on' }), envelope({ tool_id: 'ghost' }), envelope({ tool_id: 'off' })]
  const out = await lastValueFrom(from(envs).pipe(asOneBatch(extractToolConfig({ tools })), toArray()))
  const byTool = new Map(out.map((e) => [e.message.event.tool_id, e]))
  assert.is(byTool.get('on')!.tool, on)
  assert.is(byTool.get('on')!.failure, undefined)
  assert.equal([byTool.get('ghost')!.failure?.code, byTool.get('ghost')!.failure?.kind], ['UNKNOWN_TOOL', 'permanent'])
  assert.match(byTool.get('ghost')!.failure!.message, /tool "ghost", which is not configured/)
  assert.is(byTool.get('off')!.failure?.code, 'TOOL_DISABLED')
})

Extract('an accepted event\'s tool is looked up with getQueued when the lookup has it (a tool newer than the cache)', async () => {
  const asked: string[] = []
  const registryLike = { get: async () => undefined, getQueued: async (id: string) => { asked.push(id); return tools.get(id) } }
  const [out] = await lastValueFrom(from([envelope({ tool_id: 'on' })]).pipe(asOneBatch(extractToolConfig({ tools: registryLike })), toArray()))
  assert.is(out!.tool, on)
  assert.equal(asked, ['on'])
})

Extract('a lookup that cannot load tools holds the envelope until it can, instead of failing it', async () => {
  let calls = 0
  const flaky = { get: async (id: string) => {
    calls += 1
    if (calls < 3) throw new PipelineError('infrastructure', 'TOOLS_UNAVAILABLE', 'db down')
    return tools.get(id)
  } }
  const [out] = await lastValueFrom(from([envelope({ tool_id: 'on' })]).pipe(
    asOneBatch(extractToolConfig({ tools: flaky, hold: { initialDelayMs: 10 } })), toArray()))
  assert.is(calls, 3)
  assert.is(out!.tool, on)
})

Extract('a lookup that throws something else fails loudly (a bug, not an event problem)', async () => {
  const broken = { get: async () => { throw new TypeError('boom') } }
  try {
    await lastValueFrom(from([envelope({ tool_id: 'on' })]).pipe(asOneBatch(extractToolConfig({ tools: broken })), toArray()))
    assert.unreachable()
  } catch (err) {
    assert.match((err as Error).message, /boom/)
  }
})

Extract('an already-failed envelope is not looked up', async () => {
  let calls = 0
  const counting = { get: async (id: string) => { calls += 1; return tools.get(id) } }
  const failed = { ...envelope({ tool_id: 'on' }), failure: new PipelineError('permanent', 'X', 'x') }
  const [out] = await lastValueFrom(from([failed]).pipe(asOneBatch(extractToolConfig({ tools: counting })), toArray()))
  assert.is(out, failed)
  assert.is(calls, 0)
})

Extract.run()
