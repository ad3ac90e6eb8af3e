import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { ConfigError } from '../core/errors.js'

const PREFIX = 'enc:v1:'
const IV_BYTES = 12
const TAG_BYTES = 16
/** The environment variable that holds the key; named in every error. */
export const ENCRYPTION_KEY_ENV = 'HOOKSTREAM_ENCRYPTION_KEY'

/**
 * Turns HOOKSTREAM_ENCRYPTION_KEY into a 32-byte AES-256 key. Accepted, in this order: 64 hex characters;
 * base64 (standard or URL-safe) of exactly 32 bytes; otherwise a passphrase of at least 16 characters, hashed
 * with SHA-256. Generate a key with `openssl rand -base64 32`.
 *
 * @example
 * parseEncryptionKey('3q2+7w…') // Buffer of 32 bytes
 */
export function parseEncryptionKey(text: string): Buffer {
  const trimmed = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex')
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (bytes.length === 32) return bytes
  }
  if (trimmed.length < 16) {
    throw new ConfigError(ENCRYPTION_KEY_ENV, 'must be 32 bytes as 64 hex characters or base64, or a passphrase of at ' +
      `least 16 characters; got ${trimmed.length} characters — generate one with "openssl rand -base64 32"`)
  }
  return createHash('sha256').update(trimmed, 'utf8').digest()
}

/** Tells whether a stored secret is in the encrypted `enc:v1:` form. */
export function isEncrypted(stored: string): boolean {
  return stored.startsWith(PREFIX)
}

/**
 * Encrypts a secret with AES-256-GCM as `enc:v1:<base64 iv|tag|ciphertext>`. `context` (e.g. the tool id) is
 * bound as associated data, so a ciphertext copied to another row does not decrypt.
 *
 * @example
 * const stored = encryptSecret(key, 's3cret', 'tool:gh-main')
 */
export function encryptSecret(key: Buffer, secret: string, context: string): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(context, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
  return `${PREFIX}${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`
}

/**
 * Reverses `encryptSecret`; a stored value without the `enc:v1:` prefix is returned as is (written before a
 * key was configured). Throws a ConfigError naming HOOKSTREAM_ENCRYPTION_KEY when the key is missing or wrong.
 *
 * @example
 * decryptSecret(key, row.secret, 'tool:gh-main', 'tool "gh-main"')
 */
export function decryptSecret(key: Buffer | undefined, stored: string, context: string, what: string): string {
  if (!isEncrypted(stored)) return stored
  if (!key) {
    throw new ConfigError(ENCRYPTION_KEY_ENV, `is not set, but the secret of ${what} is stored encrypted; ` +
      'set it to the key the secret was written with')
  }
  const raw = Buffer.from(stored.slice(PREFIX.length), 'base64')
  try {
    if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('too short')
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES))
    decipher.setAAD(Buffer.from(context, 'utf8'))
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
  } catch (err) {
    throw Object.assign(new ConfigError(ENCRYPTION_KEY_ENV, `cannot decrypt the secret of ${what}: the key differs from ` +
      'the one it was written with, or the stored value is damaged; set the original key or store the secret again'), { cause: err })
  }
}
