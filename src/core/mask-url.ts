const MASK = '****'
// a URL in prose: up to white space or a quote, without the sentence's closing punctuation
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*[^\s"'<>`.,;:)\]]/gi
const PASSWORD_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):([^\s@/]+)@/gi
// path segments shown as written: the first two (the route: /services, /api/webhooks), when shorter than a token
const SHOWN_SEGMENTS = 2
const TOKEN_CHARS = 16

// incoming-webhook URLs (Slack, Discord, Teams, Zapier, webhook.site) carry their credential as a path segment;
// only web URLs do (a file:// URL in a stack trace keeps its path)
const WEB_PROTOCOLS = new Set(['http:', 'https:', 'ws:', 'wss:'])
function maskPath(pathname: string): string {
  return pathname.split('/').map((segment, i) =>
    segment === '' || (i <= SHOWN_SEGMENTS && segment.length < TOKEN_CHARS) ? segment : MASK).join('/')
}

/** The end of the error for a URL that `holdsUrlMask`. */
export const URL_MASK_HELD = 'holds the mask "****" of a URL shown masked, whose hidden parts would be lost; ' +
  'send the whole URL, or the masked URL unchanged to keep the stored one'

/**
 * Whether `url` holds the mask `maskUrl` writes (`****` as a password, user name, query value or path segment):
 * a masked URL sent back edited, whose hidden parts are gone. Writers refuse it; a masked URL sent back unchanged
 * is replaced by the stored one before this is asked.
 *
 * @example
 * holdsUrlMask('https://hooks.example.test/services/T1/****') // true
 */
export function holdsUrlMask(url: string): boolean {
  return url.includes(MASK) || url.includes('%2A%2A%2A%2A')
}

/**
 * The one masking of URLs for API responses, audit rows, errors, DLQ rows and logs: a password becomes
 * `****` (the user name before it stays), a user name without a password (a token, as in
 * `https://TOKEN@host`) becomes `****`, every query value becomes `****` (the names stay, so a reader sees
 * which parameters are set), and a fragment is dropped. In the path of an http(s) or ws(s) URL, the first two
 * segments stay unless one has 16 or more characters; every later segment, and every segment of 16 or more
 * characters, becomes `****` (incoming webhooks carry their token there). Text that is not a URL comes back as `"(unparseable URL hidden)"`.
 *
 * @example
 * maskUrl('https://bot:pw@hooks.example.test/in?token=abc&v=2') // "https://bot:****@hooks.example.test/in?token=****&v=****"
 * maskUrl('https://chat.example.test/hooks/T0001/XXXX')          // "https://chat.example.test/hooks/T0001/****"
 * maskUrl('postgres://app:s3cret@db:5432/hooks')                // "postgres://app:****@db:5432/hooks"
 */
export function maskUrl(url: string): string {
  if (!URL.canParse(url)) return '(unparseable URL hidden)'
  const u = new URL(url)
  if (u.password) u.password = MASK
  else if (u.username) u.username = MASK
  u.hash = ''
  if (u.search) u.search = [...u.searchParams.keys()].map((name) => `${encodeURIComponent(name)}=${MASK}`).join('&')
  if (WEB_PROTOCOLS.has(u.protocol)) u.pathname = maskPath(u.pathname)
  return u.toString()
}

/**
 * `maskUrl` applied to every `scheme://…` URL inside free text (log lines, error messages); URLs with nothing
 * to mask are left exactly as written.
 *
 * @example
 * maskUrlsInText('POST https://h/x?token=abc failed') // "POST https://h/x?token=**** failed"
 */
export function maskUrlsInText(text: string): string {
  if (!text.includes('://')) return text
  return text.replace(URL_IN_TEXT, (found) => {
    if (!URL.canParse(found)) return found.replace(PASSWORD_IN_TEXT, `$1$2:${MASK}@`)
    const masked = maskUrl(found)
    return masked === new URL(found).href ? found : masked
  })
}
