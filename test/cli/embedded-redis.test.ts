import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { startEmbeddedRedis } from '../../src/cli/embedded-redis.js'
import { startRedis } from '../helpers/servers.js'
import { silentListener } from '../helpers/silent-listener.js'

// the Redis behind a URL: its process id and data dir, read over the connection
async function serverOf(url: string): Promise<{ pid: number; dir: string }> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    const info = await redis.info('server')
    const dir = (await redis.config('GET', 'dir') as string[])[1] as string
    return { pid: Number(/process_id:(\d+)/.exec(info)?.[1]), dir }
  } finally {
    redis.disconnect()
  }
}

const portOf = (url: string) => Number(new URL(url).port)
const cmdlineOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8')

test('embedded Redis: when something that is not Redis holds the first port, it starts its own on another port', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-embedded-redis-'))
  const holder = await silentListener()
  const redis = await startEmbeddedRedis(dir, { port: holder.port })
  try {
    assert.is.not(portOf(redis.url), holder.port)
    const server = await serverOf(redis.url)
    assert.is(server.dir, dir)
    assert.match(cmdlineOf(server.pid), /redis-server/)
  } finally {
    await redis.stop()
    await holder.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('embedded Redis: when another Redis holds the first port, it never uses that one and starts its own', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-embedded-redis-'))
  const other = await startRedis()
  const redis = await startEmbeddedRedis(dir, { port: other.port })
  try {
    assert.is.not(portOf(redis.url), other.port)
    const [mine, theirs] = await Promise.all([serverOf(redis.url), serverOf(other.url)])
    assert.is.not(mine.pid, theirs.pid)
    assert.is(mine.dir, dir)
    assert.is.not(theirs.dir, dir)
  } finally {
    await redis.stop()
    await other.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
