import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { decryptSecret, encryptSecret, isEncrypted, parseEncryptionKey } from '../../src/db/secret-box.js'

const Box = suite('secret-box')

Box('reads a key as hex, base64, URL-safe base64 or a long passphrase', () => {
  const bytes = randomBytes(32)
  assert.ok(parseEncryptionKey(bytes.toString('hex')).equals(bytes))
  assert.ok(parseEncryptionKey(bytes.toString('base64')).equals(bytes))
  assert.ok(parseEncryptionKey(` ${bytes.toString('base64url')}\n`).equals(bytes))
  const pass = parseEncryptionKey('correct horse battery staple')
  assert.is(pass.length, 32)
  assert.ok(pass.equals(parseEncryptionKey('correct horse battery staple')))
  assert.throws(() => parseEncryptionKey('short'), /HOOKSTREAM_ENCRYPTION_KEY must be 32 bytes.*got 5 characters/)
})

Box('encrypts to enc:v1 with a fresh IV and decrypts only with the same key and context', () => {
  const key = randomBytes(32)
  const a = encryptSecret(key, 'tok-s3cret', 'tool:a')
  const b = encryptSecret(key, 'tok-s3cret', 'tool:a')
  assert.ok(isEncrypted(a))
  assert.is.not(a, b)
  assert.not.match(a, /tok-s3cret/)
  assert.is(decryptSecret(key, a, 'tool:a', 'tool "a"'), 'tok-s3cret')
  assert.is(decryptSecret(undefined, 'plain', 'tool:a', 'tool "a"'), 'plain')
  assert.throws(() => decryptSecret(randomBytes(32), a, 'tool:a', 'tool "a"'), /HOOKSTREAM_ENCRYPTION_KEY cannot decrypt the secret of tool "a"/)
  assert.throws(() => decryptSecret(key, a, 'tool:b', 'tool "b"'), /cannot decrypt the secret of tool "b"/)
  assert.throws(() => decryptSecret(undefined, a, 'tool:a', 'tool "a"'), /HOOKSTREAM_ENCRYPTION_KEY is not set, but the secret of tool "a"/)
  assert.throws(() => decryptSecret(key, 'enc:v1:AAAA', 'tool:a', 'tool "a"'), /damaged/)
})

Box.run()
