import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createCipheriv, randomBytes } from 'node:crypto'
import { decryptSecret, deriveEncryptionKey, encryptSecret, isEncrypted, keyIdOf, parseEncryptionKey } from '../../src/db/secret-box.js'

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

Box('derives the AES key with a KDF (not the raw bytes, not one SHA-256) and a stable key id that is not the key', () => {
  const bytes = randomBytes(32)
  const a = deriveEncryptionKey(bytes.toString('base64'))
  const same = deriveEncryptionKey(bytes.toString('hex'))
  assert.is(a.id, same.id)
  assert.match(a.id, /^[0-9a-f]{12}$/)
  assert.ok(a.aesKey.equals(same.aesKey))
  assert.not.ok(a.aesKey.equals(bytes))
  assert.not.ok(bytes.toString('hex').includes(a.id))
  const pass = deriveEncryptionKey('correct horse battery staple')
  assert.not.ok(pass.aesKey.equals(parseEncryptionKey('correct horse battery staple')), 'a passphrase is stretched with scrypt, not hashed once')
  assert.is.not(pass.id, a.id)
})

Box('encrypts to enc:v2 with the key id and a fresh IV, and decrypts only with the same key and context', () => {
  const key = deriveEncryptionKey(randomBytes(32))
  const other = deriveEncryptionKey(randomBytes(32))
  const a = encryptSecret(key, 'tok-s3cret', 'tool:a')
  const b = encryptSecret(key, 'tok-s3cret', 'tool:a')
  assert.ok(isEncrypted(a))
  assert.ok(a.startsWith(`enc:v2:${key.id}:`))
  assert.is(keyIdOf(a), key.id)
  assert.is.not(a, b)
  assert.not.match(a, /tok-s3cret/)
  assert.is(decryptSecret([key], a, 'tool:a', 'tool "a"'), 'tok-s3cret')
  assert.is(decryptSecret([other, key], a, 'tool:a', 'tool "a"'), 'tok-s3cret', 'found by its key id among several keys')
  assert.is(decryptSecret([], 'plain', 'tool:a', 'tool "a"'), 'plain')
  assert.throws(() => decryptSecret([other], a, 'tool:a', 'tool "a"'), new RegExp(`written with key ${key.id}; set HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS`))
  assert.throws(() => decryptSecret([key], a, 'tool:b', 'tool "b"'), /cannot decrypt the secret of tool "b"/)
  assert.throws(() => decryptSecret([], a, 'tool:a', 'tool "a"'), /HOOKSTREAM_ENCRYPTION_KEY is not set, but the secret of tool "a"/)
  assert.throws(() => decryptSecret([key], `enc:v2:${key.id}:AAAA`, 'tool:a', 'tool "a"'), /damaged/)
})

Box('still reads enc:v1 values written with the old key derivation (no key id)', () => {
  const text = 'correct horse battery staple'
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', parseEncryptionKey(text), iv)
  cipher.setAAD(Buffer.from('tool:a'))
  const ct = Buffer.concat([cipher.update('old-secret', 'utf8'), cipher.final()])
  const v1 = `enc:v1:${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')}`
  assert.is(keyIdOf(v1), undefined)
  assert.is(decryptSecret([deriveEncryptionKey(randomBytes(32)), deriveEncryptionKey(text)], v1, 'tool:a', 'tool "a"'), 'old-secret')
})

Box.run()
