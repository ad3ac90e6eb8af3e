// The admin API client. The token lives in sessionStorage only: it is sent as a header, never put in a URL.

const TOKEN_KEY = 'hookstream.adminToken'

/** The admin token of this tab, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY)
}

/** Keeps the admin token for this tab only (gone when the tab closes). */
export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value)
}

/** Forgets the admin token. */
export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY)
}

/** An admin API error: the answer's `{ error: { code, message } }` with the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** Calls the admin API; resolves the JSON answer (or null for 204), rejects with ApiError. */
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token() ?? ''}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store' })
  const text = await res.text()
  const data = text ? JSON.parse(text) : null
  if (!res.ok) {
    const err = data?.error ?? { code: 'HTTP_' + res.status, message: res.statusText }
    throw new ApiError(res.status, err.code, err.message)
  }
  return data
}

/** A query string from the non-empty fields of `params`. */
export function query(params) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v)
  const s = q.toString()
  return s ? `?${s}` : ''
}
