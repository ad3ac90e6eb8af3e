const MASK = '****'
// a URL in prose: up to white space or a quote, without the sentence's closing punctuation
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*[^\s"'<>`.,;:)\]]/gi
const PASSWORD_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):([^\s@/]+)@/gi

/**
 * The one masking of URLs for API responses, audit rows, errors, DLQ rows and logs: a password becomes
 * `****` (the user name before it stays), a user name without a password (a token, as in
 * `https://TOKEN@host`) becomes `****`, every query value becomes `****` (the names stay, so a reader sees
 * which parameters are set), and a fragment is dropped. Text that is not a URL comes back as `"(unparseable URL hidden)"`.
 *
 * @example
 * maskUrl('https://bot:pw@hooks.example.test/in?token=abc&v=2') // "https://bot:****@hooks.example.test/in?token=****&v=****"
 * maskUrl('postgres://app:s3cret@db:5432/hooks')                // "postgres://app:****@db:5432/hooks"
 */
export function maskUrl(url: string): string {
  if (!URL.canParse(url)) return '(unparseable URL hidden)'
  const u = new URL(url)
  if (u.password) u.password = MASK
  else if (u.username) u.username = MASK
  u.hash = ''
  if (u.search) u.search = [...u.searchParams.keys()].map((name) => `${encodeURIComponent(name)}=${MASK}`).join('&')
  return u.toString()
}

/**
 * `maskUrl` applied to every `scheme://…` URL inside free text (log lines, error messages); URLs without
 * credentials or a query are left exactly as written.
 *
 * @example
 * maskUrlsInText('POST https://h/x?token=abc failed') // "POST https://h/x?token=**** failed"
 */
export function maskUrlsInText(text: string): string {
  if (!text.includes('://')) return text
  return text.replace(URL_IN_TEXT, (found) => {
    if (!found.includes('@') && !found.includes('?') && !found.includes('#')) return found
    return URL.canParse(found) ? maskUrl(found) : found.replace(PASSWORD_IN_TEXT, `$1$2:${MASK}@`)
  })
}
