import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'

// importing a key costs about as much as the HMAC of a 20 KB body, and every forward to a destination signs with
// the same secret: keep the imported keys, at most this many (the oldest goes first); they live in memory only
const MAX_CACHED_KEYS = 1024
const cachedKeys = new Map<string, KeyObject>()

function signingKey(secret: string): KeyObject {
  let key = cachedKeys.get(secret)
  if (key) return key
  key = createSecretKey(secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8'))
  if (cachedKeys.size >= MAX_CACHED_KEYS) cachedKeys.delete(cachedKeys.keys().next().value as string)
  cachedKeys.set(secret, key)
  return key
}

/**
 * The Standard Webhooks signature of a forwarded request: `v1,` + base64 HMAC-SHA256 of
 * `"<id>.<timestamp>.<body>"`. A secret starting with `whsec_` is base64-decoded after the prefix (as the
 * spec says); any other secret is used as UTF-8 bytes. `body` is the exact request body (text as UTF-8, or its
 * bytes). The imported key of each secret is kept (up to 1,024 secrets), so signing costs only the HMAC.
 *
 * @example
 * signWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'evt-1', 1718000000, '{"id":"evt-1"}') // "v1,…"
 */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string | Uint8Array): string {
  return `v1,${createHmac('sha256', signingKey(secret)).update(`${id}.${timestampSeconds}.`).update(body).digest('base64')}`
}
