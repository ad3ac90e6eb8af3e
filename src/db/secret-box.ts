import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, scryptSync } from 'node:crypto'
import { ConfigError } from '../core/errors.js'

const V1 = 'enc:v1:'
const V2 = 'enc:v2:'
const IV_BYTES = 12
const TAG_BYTES = 16
const SALT = 'hookstream/secret-box/v2'
/** The environment variable that holds the key; named in every error. */
export const ENCRYPTION_KEY_ENV = 'HOOKSTREAM_ENCRYPTION_KEY'
/** The environment variable that holds the key before the last rotation (read only). */
export const PREVIOUS_KEY_ENV = 'HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS'

function randomKeyBytes(trimmed: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex')
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (bytes.length === 32) return bytes
  }
  return undefined
}

/**
 * The version-1 key of HOOKSTREAM_ENCRYPTION_KEY (rows written before key ids, `enc:v1:`): 64 hex
 * characters or base64 of 32 bytes as is; otherwise a passphrase of at least 16 characters, hashed once with
 * SHA-256. Only read with; new rows use `deriveEncryptionKey`. Generate a key with `openssl rand -base64 32`.
 *
 * @example
 * parseEncryptionKey('3q2+7w…') // Buffer of 32 bytes
 */
export function parseEncryptionKey(text: string): Buffer {
  const trimmed = text.trim()
  const bytes = randomKeyBytes(trimmed)
  if (bytes) return bytes
  if (trimmed.length < 16) {
    throw new ConfigError(ENCRYPTION_KEY_ENV, 'must be 32 bytes as 64 hex characters or base64, or a passphrase of at ' +
      `least 16 characters; got ${trimmed.length} characters — generate one with "openssl rand -base64 32"`)
  }
  return createHash('sha256').update(trimmed, 'utf8').digest()
}

/** One HOOKSTREAM_ENCRYPTION_KEY, ready to use: its id (stored with each ciphertext), AES key and v1 key. */
export interface EncryptionKey {
  /** 12 hex characters derived from the key (not the key): which key a ciphertext was written with. */
  readonly id: string
  /** The AES-256-GCM key of `enc:v2:` ciphertexts. */
  readonly aesKey: Buffer
  /** The key `enc:v1:` rows were written with. */
  readonly v1Key: Buffer
}

/**
 * Derives the encryption key from HOOKSTREAM_ENCRYPTION_KEY (or a 32-byte Buffer). A random key (64 hex
 * characters or base64 of 32 bytes) goes through HKDF-SHA256 (salt "hookstream/secret-box/v2", info
 * "aes-256-gcm" for the AES key, "key-id" for the id); a passphrase (≥ 16 characters) is first stretched with
 * scrypt (N 2^15, r 8, p 1, same salt), then through the same HKDF. Throws a ConfigError for a short key.
 *
 * @example
 * const key = deriveEncryptionKey(process.env.HOOKSTREAM_ENCRYPTION_KEY!) // { id: '3f9a…', aesKey, v1Key }
 */
export function deriveEncryptionKey(input: string | Buffer): EncryptionKey {
  let ikm: Buffer
  let v1Key: Buffer
  if (Buffer.isBuffer(input)) {
    if (input.length !== 32) throw new RangeError(`encryption key must be 32 bytes; got ${input.length}`)
    ikm = input
    v1Key = input
  } else {
    v1Key = parseEncryptionKey(input)
    const trimmed = input.trim()
    ikm = randomKeyBytes(trimmed) ?? scryptSync(trimmed, SALT, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 })
  }
  const hkdf = (info: string, bytes: number) => Buffer.from(hkdfSync('sha256', ikm, SALT, info, bytes))
  return Object.freeze({ id: hkdf('key-id', 6).toString('hex'), aesKey: hkdf('aes-256-gcm', 32), v1Key })
}

/** Tells whether a stored secret is encrypted (`enc:v1:` or `enc:v2:`). */
export function isEncrypted(stored: string): boolean {
  return stored.startsWith(V1) || stored.startsWith(V2)
}

/** The key id of an `enc:v2:` ciphertext; undefined for plain text and `enc:v1:` rows (no id). */
export function keyIdOf(stored: string): string | undefined {
  return stored.startsWith(V2) ? stored.slice(V2.length).split(':', 1)[0] : undefined
}

/**
 * Encrypts a secret with AES-256-GCM as `enc:v2:<key id>:<base64 iv|tag|ciphertext>`. `context` (e.g. the
 * tool id and field) is bound as associated data, so a ciphertext copied to another row or field does not decrypt.
 *
 * @example
 * const stored = encryptSecret(deriveEncryptionKey(text), 's3cret', 'tool:gh-main')
 */
export function encryptSecret(key: EncryptionKey, secret: string, context: string): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key.aesKey, iv)
  cipher.setAAD(Buffer.from(context, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
  return `${V2}${key.id}:${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`
}

function open(aesKey: Buffer, raw: Buffer, context: string): string {
  if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('too short')
  const decipher = createDecipheriv('aes-256-gcm', aesKey, raw.subarray(0, IV_BYTES))
  decipher.setAAD(Buffer.from(context, 'utf8'))
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
}

/**
 * Reverses `encryptSecret` with whichever of `keys` (current first, then previous) wrote the value: an
 * `enc:v2:` value by its key id, an `enc:v1:` value (no id) by trying each key. A value without a prefix is
 * returned as is (written before a key was configured). Throws a ConfigError naming the environment variable
 * to set when no key fits or the value is damaged.
 *
 * @example
 * decryptSecret([current, previous], row.secret, 'tool:gh-main', 'tool "gh-main"')
 */
export function decryptSecret(keys: readonly EncryptionKey[], stored: string, context: string, what: string): string {
  if (!isEncrypted(stored)) return stored
  if (keys.length === 0) {
    throw new ConfigError(ENCRYPTION_KEY_ENV, `is not set, but the secret of ${what} is stored encrypted; ` +
      'set it to the key the secret was written with')
  }
  const id = keyIdOf(stored)
  const candidates = id === undefined ? keys.map((k) => k.v1Key) : keys.filter((k) => k.id === id).map((k) => k.aesKey)
  if (candidates.length === 0) {
    throw new ConfigError(ENCRYPTION_KEY_ENV, `has id ${keys[0]!.id}${keys[1] ? ` (and ${PREVIOUS_KEY_ENV} ${keys[1].id})` : ''}, but the ` +
      `secret of ${what} was written with key ${id}; set ${PREVIOUS_KEY_ENV} to that key, then run "hookstream tools reencrypt"`)
  }
  const raw = Buffer.from(stored.slice(id === undefined ? V1.length : V2.length + id.length + 1), 'base64')
  let last: unknown
  for (const aesKey of candidates) {
    try {
      return open(aesKey, raw, context)
    } catch (err) {
      last = err
    }
  }
  throw Object.assign(new ConfigError(ENCRYPTION_KEY_ENV, `cannot decrypt the secret of ${what}: the key differs from ` +
    `the one it was written with, or the stored value is damaged; set the original key (or ${PREVIOUS_KEY_ENV}) or store the secret again`), { cause: last })
}
