import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { loadConfig } from '../../src/config/load-config.js'
import { maskUrl, maskUrlsInText } from '../../src/core/mask-url.js'
import { DEFAULT_SCRUB_HEADERS, headerScrubber } from '../../src/core/scrub-headers.js'

const Scrub = suite('inbound header scrub list and URL masking')

Scrub('the default list drops credential headers by name and by -secret/-token/-signature suffix, and keeps the rest', () => {
  const scrub = headerScrubber(DEFAULT_SCRUB_HEADERS)
  const dropped = ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'x-auth-token', 'x-shop-secret', 'x-csrf-token',
    'x-custom-signature', 'x-hub-signature-256']
  const kept = ['content-type', 'user-agent', 'x-github-event', 'x-request-id', 'x-tokenizer', 'x-signature-version']
  assert.equal(dropped.filter((h) => !scrub(h)), [])
  assert.equal(kept.filter((h) => scrub(h)), [])
})

Scrub('INGEST_SCRUB_HEADERS replaces the list (names, *-suffix, prefix-*) and a bad entry fails at startup naming it', () => {
  const c = loadConfig({ env: { INGEST_SCRUB_HEADERS: 'authorization, x-internal-*, *-pass' } })
  assert.equal(c.http.scrubHeaders, ['authorization', 'x-internal-*', '*-pass'])
  const scrub = headerScrubber(c.http.scrubHeaders!)
  assert.equal(['authorization', 'x-internal-id', 'db-pass', 'cookie'].map(scrub), [true, true, true, false])
  assert.is(loadConfig({ env: {} }).http.scrubHeaders, undefined)
  assert.throws(() => loadConfig({ env: { INGEST_SCRUB_HEADERS: 'authorization,x y' } }), /INGEST_SCRUB_HEADERS/)
})

Scrub('maskUrl hides the password, a token user name and every query value; plain URLs in text stay as written', () => {
  assert.is(maskUrl('https://bot:pw@h.test/in?token=abc&v=2#frag'), 'https://bot:****@h.test/in?token=****&v=****')
  assert.is(maskUrl('https://ghp_tok@h.test/in'), 'https://****@h.test/in')
  assert.is(maskUrl('not a url'), '(unparseable URL hidden)')
  assert.is(maskUrlsInText('to https://h.test/in and http://u:p@h.test/x?k=v.'), 'to https://h.test/in and http://u:****@h.test/x?k=****.')
})

Scrub.run()
