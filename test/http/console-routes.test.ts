import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync } from 'node:fs'
import { consoleRoutes } from '../../src/http/console-routes.js'
import { createRouter, startHttpServer, type RunningHttpServer } from '../../src/http/server.js'
import { release } from '../helpers/release.js'

const CONSOLE_DIR = new URL('../../src/http/console/', import.meta.url)

const Console = suite<{ http?: RunningHttpServer }>('console routes', {})
Console.before(async (ctx) => { ctx.http = await startHttpServer('127.0.0.1:0', createRouter(consoleRoutes())) })
Console.after((ctx) => release(ctx, { http: (h) => h.close() }))

Console('/console, /console/ and every console file answer with a strict CSP and the right content type', async ({ http }) => {
  const files = readdirSync(CONSOLE_DIR)
  assert.ok(files.includes('index.html') && files.includes('app.js') && files.includes('console.css'), files.join(', '))
  for (const path of ['/console', '/console/', ...files.map((f) => `/console/${f}`)]) {
    const res = await fetch(`${http!.url}${path}`)
    const body = await res.text()
    assert.is(res.status, 200, path)
    const csp = res.headers.get('content-security-policy') ?? ''
    assert.match(csp, /default-src 'self'/, path)
    assert.match(csp, /script-src 'self';/, path)
    assert.not.match(csp, /unsafe-inline|unsafe-eval|https?:/, path)
    assert.is(res.headers.get('x-content-type-options'), 'nosniff')
    assert.is(res.headers.get('referrer-policy'), 'no-referrer')
    const type = res.headers.get('content-type') ?? ''
    if (path.endsWith('.js')) assert.match(type, /^text\/javascript/, path)
    else if (path.endsWith('.css')) assert.match(type, /^text\/css/, path)
    else if (path.endsWith('.svg')) assert.match(type, /^image\/svg\+xml/, path)
    else assert.match(type, /^text\/html/, path)
    const file = path === '/console' || path === '/console/' ? 'index.html' : path.slice('/console/'.length)
    assert.is(body, readFileSync(new URL(file, CONSOLE_DIR), 'utf8'), path)
  }
})

Console('the page loads no inline script, no inline style and nothing from another origin', () => {
  const html = readFileSync(new URL('index.html', CONSOLE_DIR), 'utf8')
  assert.not.match(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script has a src')
  assert.not.match(html, /\sstyle=|<style|\son[a-z]+=/i, 'no inline style or handler')
  for (const file of readdirSync(CONSOLE_DIR)) {
    const text = readFileSync(new URL(file, CONSOLE_DIR), 'utf8')
    // the SVG namespace is a name, not a fetch
    assert.not.match(text.replaceAll('xmlns="http://www.w3.org/2000/svg"', ''), /https?:\/\//, `${file} refers to no other origin`)
    assert.not.match(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, `${file} never parses data as HTML or code`)
    assert.not.match(text, /localStorage/, `${file} keeps the token in sessionStorage only`)
  }
})

Console('a path outside the console files is not served, and no request reaches the file system', async ({ http }) => {
  for (const path of ['/console/../package.json', '/console/%2e%2e/package.json', '/console/nope.js', '/console/console-routes.ts', '/console.css']) {
    const res = await fetch(`${http!.url}${path}`)
    await res.arrayBuffer()
    assert.is(res.status, 404, path)
  }
  const post = await fetch(`${http!.url}/console`, { method: 'POST' })
  await post.arrayBuffer()
  assert.is(post.status, 405)
})

Console('the package ships the console: the build copies its files next to the compiled routes', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { files: string[]; scripts: Record<string, string> }
  assert.ok(pkg.files.includes('dist/src'), 'dist/src is in the package')
  // consoleRoutes reads ./console/ next to its own module: src/http/console under tsx, dist/src/http/console when built
  assert.match(pkg.scripts.build ?? '', /cpSync\('src\/http\/console', 'dist\/src\/http\/console', \{ recursive: true \}\)/)
  assert.match(pkg.scripts.prepack ?? '', /npm run build/)
})

Console.run()
