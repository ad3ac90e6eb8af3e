import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { from, lastValueFrom, map, toArray } from 'rxjs'
import { parseTool } from '../../src/core/tool.js'
import { transform } from '../../src/operators/transform.js'
import { envelope } from './helpers.js'

const Transform = suite('transform')
const withTool = (tool: ReturnType<typeof parseTool>, payload: unknown) => ({ ...envelope({ tool_id: tool.id, payload }), tool })

Transform('a field mapping keeps the payload and adds the result', async () => {
  const tool = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store',
    transform: { branch: "$substringAfter(ref, 'refs/heads/')", n: '$count(commits)' } })
  const [out] = await lastValueFrom(from([withTool(tool, { ref: 'refs/heads/dev', commits: [1, 2, 3] })]).pipe(transform(), toArray()))
  assert.equal(out!.transformed, { branch: 'dev', n: 3 })
  assert.equal(out!.message.event.payload, { ref: 'refs/heads/dev', commits: [1, 2, 3] })
})

Transform('one whole-result expression replaces the result', async () => {
  const tool = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: '{ "who": sender.login }' })
  const [out] = await lastValueFrom(from([withTool(tool, { sender: { login: 'ada' } })]).pipe(transform(), toArray()))
  assert.equal(out!.transformed, { who: 'ada' })
})

Transform('a rule that does not compile fails permanently naming the rule', async () => {
  const tool = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { bad: '$count(' } })
  const [out] = await lastValueFrom(from([withTool(tool, {})]).pipe(transform(), toArray()))
  assert.is(out!.failure?.code, 'TRANSFORM_INVALID')
  assert.match(out!.failure!.message, /tool "t" transform rule "bad" does not compile/)
})

Transform('a changed rule set is compiled again; other modes pass through untouched', async () => {
  const a = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { v: 'a' } })
  const b = parseTool({ id: 't', provider: 'github', secret: 'x', processing_mode: 'transform_and_store', transform: { v: 'b' } })
  const plain = parseTool({ id: 'p', provider: 'github', secret: 'x' })
  const envs = [withTool(a, { a: 1, b: 2 }), withTool(b, { a: 1, b: 2 }), withTool(plain, { a: 1 })]
  const out = await lastValueFrom(from(envs).pipe(transform({ concurrency: 1 }), map((e) => e.transformed), toArray()))
  assert.equal(out, [{ v: 1 }, { v: 2 }, undefined])
})

Transform.run()
